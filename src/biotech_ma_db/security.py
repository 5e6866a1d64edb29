"""Secrets at rest: the API-key pepper and the webhook-secret encryption keys.

Two secrets come from the settings, never from code or the database:

``DB_API_KEY_PEPPER``
    The key of the HMAC-SHA-256 that turns an API key into the digest stored in
    ``api_keys.key_hash``.  Keys hashed under one pepper do not verify under another.
``DB_WEBHOOK_ENCRYPTION_KEYS``
    ``version:key`` pairs (``key`` = 32 random bytes, URL-safe base64), comma-separated,
    e.g. ``2:Zm9v...,1:YmFy...``.  Webhook signing secrets must be recoverable to sign, so
    they are encrypted (AES-256-GCM), not hashed; ``webhooks.secret_key_version`` records
    which key sealed each one.  ``DB_WEBHOOK_ENCRYPTION_KEY_VERSION`` picks the key that
    seals new secrets (default: the highest version); all listed keys can open.

:class:`SecurityConfig` carries both, built from the settings by
:meth:`SecurityConfig.from_settings`.  Outside production, a missing secret falls back to
a fixed, clearly named development value (version ``0`` for the encryption key), so tests
and demos work without configuration; in production the first use of a missing secret
raises :class:`~biotech_ma_db.settings.SettingsError` naming the variable.

Rotating the encryption key: add the new ``version:key`` pair, deploy, set
``DB_WEBHOOK_ENCRYPTION_KEY_VERSION`` to it (or let it be the highest), deploy, then run
``WebhookRepository.reencrypt_secrets()`` (as ``app_worker``) until it returns 0, and
finally drop the old pair.  Generate a key with :func:`generate_encryption_key`.

Nothing here puts a secret in a ``repr``, a log line or an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from biotech_ma_db.errors import DatabaseError
from biotech_ma_db.settings import SettingsError, parse_key_ring

if TYPE_CHECKING:
    from biotech_ma_db.settings import DatabaseSettings

__all__ = [
    "DEVELOPMENT_API_KEY_PEPPER",
    "DEVELOPMENT_KEY_VERSION",
    "SecretCipher",
    "SecretDecryptionError",
    "SecurityConfig",
    "generate_encryption_key",
]

DEVELOPMENT_API_KEY_PEPPER: Final = b"biotech-ma-db-DEVELOPMENT-ONLY-api-key-pepper"
"""The pepper used outside production when ``DB_API_KEY_PEPPER`` is not set."""

DEVELOPMENT_KEY_VERSION: Final = 0
"""Key version of the development encryption key (real keys are numbered from 1)."""

_DEVELOPMENT_KEY: Final = hashlib.sha256(b"biotech-ma-db-DEVELOPMENT-ONLY-webhook-key").digest()
_NONCE_BYTES: Final = 12
_KEY_BYTES: Final = 32


class SecretDecryptionError(DatabaseError):
    """A stored secret could not be decrypted: unknown key version, wrong key, or tampering."""


def generate_encryption_key() -> str:
    """A new 256-bit key, URL-safe base64, for ``DB_WEBHOOK_ENCRYPTION_KEYS``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).decode("ascii")


class SecretCipher:
    """AES-256-GCM over small secrets, with versioned keys for rotation.

    A sealed value is URL-safe base64 of ``nonce (12 bytes) || ciphertext || tag``; the
    associated data binds it to its purpose and key version, so a value sealed for
    another purpose or relabelled with another version does not open.

    Args:
        keys: Key version -> 32-byte key.
        current: The version that seals new values (default: the highest).
        purpose: Associated-data label (what the values are).
    """

    def __init__(
        self,
        keys: Mapping[int, bytes],
        *,
        current: int | None = None,
        purpose: str = "webhooks.secret",
    ) -> None:
        if not keys:
            raise ValueError("a SecretCipher needs at least one key")
        for version, key in keys.items():
            if isinstance(version, bool) or version < 0:
                raise ValueError("key versions are non-negative integers")
            if len(key) != _KEY_BYTES:
                raise ValueError(f"key version {version} is not {_KEY_BYTES} bytes long")
        self._keys = {version: AESGCM(key) for version, key in keys.items()}
        self.current_version = max(keys) if current is None else current
        if self.current_version not in self._keys:
            raise ValueError(f"no key with version {self.current_version}")
        self._purpose = purpose

    @classmethod
    def development(cls) -> SecretCipher:
        """The cipher with the fixed development key (version 0); never for production."""
        return cls({DEVELOPMENT_KEY_VERSION: _DEVELOPMENT_KEY})

    @property
    def versions(self) -> list[int]:
        """The key versions this cipher can open, ascending."""
        return sorted(self._keys)

    def __repr__(self) -> str:
        return f"SecretCipher(versions={self.versions}, current={self.current_version})"

    def _aad(self, version: int) -> bytes:
        return f"biotech_ma_db/{self._purpose}/v{version}".encode()

    def encrypt(self, plaintext: str) -> tuple[str, int]:
        """Seal ``plaintext`` with the current key; returns ``(sealed, key_version)``."""
        version = self.current_version
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._keys[version].encrypt(nonce, plaintext.encode(), self._aad(version))
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii"), version

    def decrypt(self, sealed: str, version: int) -> str:
        """Open a value sealed with key ``version``.

        Raises:
            SecretDecryptionError: Unknown version, wrong key, or a modified value.
        """
        cipher = self._keys.get(version)
        if cipher is None:
            raise SecretDecryptionError(
                f"no encryption key with version {version} is configured "
                "(DB_WEBHOOK_ENCRYPTION_KEYS)"
            )
        try:
            raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
            plain = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._aad(version))
        except (InvalidTag, ValueError, binascii.Error, UnicodeError):
            raise SecretDecryptionError(
                f"a stored secret does not decrypt with key version {version}"
            ) from None
        return plain.decode()


@dataclass(frozen=True, repr=False)
class SecurityConfig:
    """The secrets repositories need, resolved lazily so unused ones need no configuration.

    Attributes:
        api_key_pepper: ``DB_API_KEY_PEPPER``, if set.
        webhook_keys: ``DB_WEBHOOK_ENCRYPTION_KEYS`` as ``{version: key}``.
        webhook_key_version: ``DB_WEBHOOK_ENCRYPTION_KEY_VERSION``, if set.
        production: Refuse the development fallbacks, and require https webhooks.
    """

    api_key_pepper: SecretStr | None = None
    webhook_keys: Mapping[int, SecretStr] = field(default_factory=dict)
    webhook_key_version: int | None = None
    production: bool = False

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> SecurityConfig:
        """The configuration described by ``settings`` (nothing is checked until used)."""
        ring = settings.webhook_encryption_keys
        keys = parse_key_ring(ring.get_secret_value()) if ring is not None else {}
        return cls(
            api_key_pepper=settings.api_key_pepper,
            webhook_keys={
                version: SecretStr(base64.urlsafe_b64encode(key).decode())
                for version, key in keys.items()
            },
            webhook_key_version=settings.webhook_encryption_key_version,
            production=settings.environment == "production",
        )

    def __repr__(self) -> str:
        pepper = "set" if self.api_key_pepper is not None else "unset"
        return (
            f"SecurityConfig(api_key_pepper={pepper}, webhook_key_versions="
            f"{sorted(self.webhook_keys)}, production={self.production})"
        )

    @property
    def https_only(self) -> bool:
        """Whether webhook URLs must use https (production)."""
        return self.production

    def pepper(self) -> bytes:
        """The API-key pepper.

        Raises:
            SettingsError: In production when ``DB_API_KEY_PEPPER`` is not set.
        """
        if self.api_key_pepper is not None:
            return self.api_key_pepper.get_secret_value().encode()
        if self.production:
            raise SettingsError(
                "DB_API_KEY_PEPPER: production requires a secret pepper for API-key digests"
            )
        return DEVELOPMENT_API_KEY_PEPPER

    def cipher(self) -> SecretCipher:
        """The webhook-secret cipher.

        Raises:
            SettingsError: In production when ``DB_WEBHOOK_ENCRYPTION_KEYS`` is not set.
        """
        if self.webhook_keys:
            keys = {
                version: base64.urlsafe_b64decode(key.get_secret_value())
                for version, key in self.webhook_keys.items()
            }
            return SecretCipher(keys, current=self.webhook_key_version)
        if self.production:
            raise SettingsError(
                "DB_WEBHOOK_ENCRYPTION_KEYS: production requires a key to encrypt webhook secrets"
            )
        return SecretCipher.development()
