"""Unit tests of the secret-handling helpers: key rings, the cipher, SCRAM verifiers."""

from __future__ import annotations

import base64
import re

import pytest
from pydantic import SecretStr

from biotech_ma_db import DatabaseSettings, SettingsError
from biotech_ma_db.roles import scram_sha256_verifier
from biotech_ma_db.security import (
    DEVELOPMENT_KEY_VERSION,
    SecretCipher,
    SecretDecryptionError,
    SecurityConfig,
    generate_encryption_key,
)
from biotech_ma_db.settings import parse_key_ring


class TestKeyRing:
    """``DB_WEBHOOK_ENCRYPTION_KEYS`` parsing never quotes a key."""

    def test_valid_ring(self) -> None:
        one, two = generate_encryption_key(), generate_encryption_key()
        ring = parse_key_ring(f" 2:{two} , 1:{one} ")
        assert set(ring) == {1, 2}
        assert ring[2] == base64.urlsafe_b64decode(two)

    @pytest.mark.parametrize(
        "text",
        ["", "1", "0:{k}", "x:{k}", "1:{short}", "1:{k},1:{k}", "1:not base64!!"],
    )
    def test_invalid_ring(self, text: str) -> None:
        key = generate_encryption_key()
        value = text.format(k=key, short=key[:20])
        with pytest.raises(ValueError, match=r"version|entry") as caught:
            parse_key_ring(value)
        assert key not in str(caught.value)
        assert key[:20] not in str(caught.value)

    def test_settings_check_the_ring_and_the_version(self) -> None:
        key = generate_encryption_key()
        with pytest.raises(SettingsError, match="DB_WEBHOOK_ENCRYPTION_KEYS") as caught:
            DatabaseSettings(webhook_encryption_keys=f"1:{key[:-4]}")
        assert key[:-4] not in str(caught.value)
        with pytest.raises(SettingsError, match="DB_WEBHOOK_ENCRYPTION_KEY_VERSION"):
            DatabaseSettings(webhook_encryption_keys=f"1:{key}", webhook_encryption_key_version=2)
        settings = DatabaseSettings(webhook_encryption_keys=f"1:{key}")
        assert key not in repr(settings)
        assert key not in settings.model_dump_json()


class TestCipher:
    """AES-GCM with the key version bound into the associated data."""

    def test_round_trip_and_tamper(self) -> None:
        keys = {1: b"a" * 32, 2: b"b" * 32}
        cipher = SecretCipher(keys)
        sealed, version = cipher.encrypt("whsec_plain")
        assert version == 2
        assert "whsec_plain" not in sealed
        assert cipher.decrypt(sealed, 2) == "whsec_plain"
        assert cipher.encrypt("whsec_plain")[0] != sealed  # fresh nonce every time
        with pytest.raises(SecretDecryptionError):
            cipher.decrypt(sealed, 1)  # relabelled with another version
        raw = bytearray(base64.urlsafe_b64decode(sealed))
        raw[-1] ^= 1
        with pytest.raises(SecretDecryptionError):
            cipher.decrypt(base64.urlsafe_b64encode(bytes(raw)).decode(), 2)
        with pytest.raises(SecretDecryptionError, match="version 9"):
            cipher.decrypt(sealed, 9)
        assert "b" * 32 not in repr(cipher)
        assert SecretCipher(keys, current=1).encrypt("x")[1] == 1

    def test_bad_keys(self) -> None:
        with pytest.raises(ValueError, match="bytes"):
            SecretCipher({1: b"short"})
        with pytest.raises(ValueError, match="version"):
            SecretCipher({1: b"a" * 32}, current=3)


class TestSecurityConfig:
    """Development fallbacks outside production, a clear error in production."""

    def test_fallbacks_and_production(self) -> None:
        development = SecurityConfig()
        assert development.cipher().current_version == DEVELOPMENT_KEY_VERSION
        assert development.pepper()
        production = SecurityConfig(production=True)
        with pytest.raises(SettingsError, match="DB_API_KEY_PEPPER"):
            production.pepper()
        with pytest.raises(SettingsError, match="DB_WEBHOOK_ENCRYPTION_KEYS"):
            production.cipher()
        configured = SecurityConfig(api_key_pepper=SecretStr("pepper-value"), production=True)
        assert configured.pepper() == b"pepper-value"
        assert "pepper-value" not in repr(configured)


class TestScramVerifier:
    """The verifier has PostgreSQL's format; SASLprep maps non-ASCII spaces."""

    def test_format_and_determinism(self) -> None:
        verifier = scram_sha256_verifier("p%@ss:w/rd", salt=b"0123456789abcdef")
        assert re.fullmatch(
            r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+", verifier
        )
        assert verifier == scram_sha256_verifier(SecretStr("p%@ss:w/rd"), salt=b"0123456789abcdef")
        assert "p%@ss" not in verifier
        assert scram_sha256_verifier("a\u00a0b", salt=b"s" * 16) == scram_sha256_verifier(
            "a b", salt=b"s" * 16
        )
