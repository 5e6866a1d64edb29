"""SCRAM-SHA-256 verifiers: a password as PostgreSQL stores it, computed client-side.

Sending ``ALTER ROLE … PASSWORD '<verifier>'`` sets a password without the plaintext
ever reaching the server, its logs or ``pg_stat_activity`` (what ``psql``'s
``\\password`` does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from typing import Final

from pydantic import SecretStr

__all__ = ["scram_sha256_verifier"]

_SCRAM_ITERATIONS: Final = 4096


def _saslprep(password: str) -> str:
    """RFC 4013 SASLprep as PostgreSQL and asyncpg apply it; the input if prohibited."""
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in password
        if not stringprep.in_table_b1(ch)
    )
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized:
        return password
    prohibited = (
        stringprep.in_table_a1,
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    if any(check(ch) for ch in normalized for check in prohibited):
        return password
    if any(stringprep.in_table_d1(ch) for ch in normalized) and (
        any(stringprep.in_table_d2(ch) for ch in normalized)
        or not stringprep.in_table_d1(normalized[0])
        or not stringprep.in_table_d1(normalized[-1])
    ):
        return password
    return normalized


def scram_sha256_verifier(
    password: str | SecretStr, *, salt: bytes | None = None, iterations: int = _SCRAM_ITERATIONS
) -> str:
    """The ``SCRAM-SHA-256$…`` verifier PostgreSQL stores for ``password``.

    ``ALTER ROLE … PASSWORD '<verifier>'`` sets the password without the plaintext ever
    reaching the server (what ``psql``'s ``\\password`` does).
    """
    plain = password.get_secret_value() if isinstance(password, SecretStr) else password
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(plain).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
