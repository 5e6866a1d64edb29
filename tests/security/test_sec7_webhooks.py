"""T-SEC-7: webhook signatures (Standard Webhooks) and signing secrets encrypted at rest."""

from __future__ import annotations

import json

import pytest

from biotech_ma_db import Database, UnitOfWork, ValidationError
from biotech_ma_db.security import (
    SecretCipher,
    SecretDecryptionError,
    SecurityConfig,
    generate_encryption_key,
)
from biotech_ma_db.settings import DatabaseSettings
from biotech_ma_db.webhook_signing import (
    WebhookVerificationError,
    generate_webhook_secret,
    sign_payload,
    signature_headers,
    verify_signature,
)

from .conftest import Figure, Secured, new_tenant

NOW = 1_767_225_600
BODY = json.dumps({"type": "signal.created", "data": {"ticker": "ABCD"}}).encode()


def _rejected(secret: object, **kwargs: object) -> bool:
    try:
        verify_signature(secret, **kwargs)  # type: ignore[arg-type]
    except WebhookVerificationError:
        return True
    return False


class TestSignatures:
    """Bad signature, mutated body, stale timestamp and rotation."""

    def test_rejections_and_rotation(self, figure: Figure) -> None:
        secret = generate_webhook_secret()
        headers = signature_headers(secret, msg_id="evt_1", body=BODY, timestamp=NOW)
        verify_signature(secret, headers=headers, body=BODY, now=NOW)
        verify_signature(secret, headers=headers, body=bytearray(BODY), now=NOW + 299)
        verify_signature(secret, headers=headers, body=memoryview(BODY), now=NOW - 299)
        rejected = {
            "wrong secret": _rejected(
                generate_webhook_secret(), headers=headers, body=BODY, now=NOW
            ),
            "forged signature": _rejected(
                secret,
                headers={**headers, "webhook-signature": "v1," + "A" * 44},
                body=BODY,
                now=NOW,
            ),
            "other message id": _rejected(
                secret, headers={**headers, "webhook-id": "evt_2"}, body=BODY, now=NOW
            ),
            "timestamp +301 s": _rejected(secret, headers=headers, body=BODY, now=NOW + 301),
            "timestamp -301 s": _rejected(secret, headers=headers, body=BODY, now=NOW - 301),
            "timestamp edited": _rejected(
                secret,
                headers={**headers, "webhook-timestamp": str(NOW + 1)},
                body=BODY,
                now=NOW,
            ),
            "missing header": _rejected(
                secret, headers={"webhook-id": "evt_1"}, body=BODY, now=NOW
            ),
            "unsupported version": _rejected(
                secret,
                headers={
                    **headers,
                    "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,"),
                },
                body=BODY,
                now=NOW,
            ),
        }
        mutations = 0
        for index in range(len(BODY)):
            for bit in (0x01, 0x80):
                mutated = bytearray(BODY)
                mutated[index] ^= bit
                assert _rejected(secret, headers=headers, body=bytes(mutated), now=NOW)
                mutations += 1
        assert _rejected(secret, headers=headers, body=BODY + b" ", now=NOW)
        assert all(rejected.values()), rejected
        with pytest.raises(TypeError):
            verify_signature(secret, headers=headers, body=BODY.decode(), now=NOW)  # type: ignore[arg-type]

        old, new = secret, generate_webhook_secret()
        both = signature_headers([new, old], msg_id="evt_9", body=BODY, timestamp=NOW)
        assert len(both["webhook-signature"].split()) == 2
        verify_signature(old, headers=both, body=BODY, now=NOW)  # receiver not yet rotated
        verify_signature(new, headers=both, body=BODY, now=NOW)  # receiver already rotated
        only_new = signature_headers(new, msg_id="evt_10", body=BODY, timestamp=NOW)
        verify_signature([new, old], headers=only_new, body=BODY, now=NOW)
        assert _rejected(old, headers=only_new, body=BODY, now=NOW)
        figure(
            f"{len(rejected)} forged/stale cases and {mutations} one-bit body mutations: all "
            "rejected; ±299 s accepted, ±301 s rejected; rotation with 2 secrets accepted "
            "both ways"
        )

    def test_known_vector(self) -> None:
        """The Standard Webhooks reference example verifies (interoperability)."""
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        body = b'{"test": 2432232314}'
        signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        assert (
            sign_payload(
                secret, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330, body=body
            )
            == signature
        )
        verify_signature(
            secret,
            msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp="1614265330",
            signature=signature,
            body=body,
            now=1614265330,
        )


class TestSecretsAtRest:
    """Signing secrets are stored encrypted, with a key version, and rotate."""

    async def test_encrypted_decrypted_rotated(self, secured: Secured, figure: Figure) -> None:
        key_v1 = generate_encryption_key()
        key_v2 = generate_encryption_key()
        settings = DatabaseSettings.from_url(
            secured.url("app_rw"),
            webhook_encryption_keys=f"1:{key_v1}",
            pool_size=2,
            max_overflow=0,
        )
        db = Database(settings)
        worker = Database.from_url(
            secured.url("app_worker"),
            webhook_encryption_keys=f"1:{key_v1},2:{key_v2}",
            webhook_encryption_key_version=2,
            pool_size=1,
            max_overflow=0,
        )
        try:
            tenant = await new_tenant(db, "Hooked")
            async with db.unit_of_work(client_id=tenant.client_id) as uow:
                created = await uow.webhooks.create(
                    client_id=tenant.client_id, url="https://hooks.example.com/enc"
                )
                plain = created.secret
                first = await uow.webhooks.enqueue_delivery(created.id, "x", {}, "evt-replay")
                replay = await uow.webhooks.enqueue_delivery(
                    created.id, "x", {"n": 2}, "evt-replay"
                )
                await uow.commit()
            assert first is not None
            assert replay is None
            conn = await secured.connect("app_worker")
            try:
                sealed, version = await conn.fetchrow(
                    "SELECT secret, secret_key_version FROM webhooks WHERE id = $1", created.id
                )
                deliveries = await conn.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1", created.id
                )
            finally:
                await conn.close()
            assert deliveries == 1
            assert plain.startswith("whsec_")
            assert sealed != plain
            assert plain not in sealed
            assert version == 1
            assert db.security.cipher().decrypt(sealed, 1) == plain
            async with db.unit_of_work(client_id=tenant.client_id) as uow:
                assert await uow.webhooks.get_signing_secret(created.id) == plain

            async with worker.unit_of_work() as uow:
                rotated = 0
                while count := await uow.webhooks.reencrypt_secrets(limit=100):
                    rotated += count
                await uow.commit()
            async with worker.unit_of_work() as uow:
                assert await uow.webhooks.get_signing_secret(created.id) == plain
            conn = await secured.connect("app_worker")
            try:
                resealed, version = await conn.fetchrow(
                    "SELECT secret, secret_key_version FROM webhooks WHERE id = $1", created.id
                )
            finally:
                await conn.close()
            assert version == 2
            assert resealed != sealed
            with pytest.raises(SecretDecryptionError) as caught:
                async with db.unit_of_work(client_id=tenant.client_id) as uow:
                    await uow.webhooks.get_signing_secret(created.id)
            assert key_v2 not in str(caught.value)
            with pytest.raises(SecretDecryptionError):
                SecretCipher.development().decrypt(resealed, 2)
        finally:
            await db.dispose()
            await worker.dispose()
        figure(
            f"secret sealed with key v1 (ciphertext ≠ plaintext, decrypts with v1); replayed "
            f"event id: 1 delivery row; re-encrypted {rotated} secret(s) to v2, old key "
            "alone refused"
        )

    async def test_https_required_in_production(self, rw_db: Database) -> None:
        tenant = await new_tenant(rw_db, "Plain http")
        production = SecurityConfig(
            api_key_pepper=None, webhook_keys={}, webhook_key_version=None, production=True
        )
        with pytest.raises(Exception, match="DB_WEBHOOK_ENCRYPTION_KEYS"):
            production.cipher()
        async with UnitOfWork(
            rw_db.sessionmaker,
            client_id=tenant.client_id,
            security=SecurityConfig(production=False),
        ) as uow:
            await uow.webhooks.create(client_id=tenant.client_id, url="http://dev.example/hook")
        strict = SecurityConfig(
            webhook_keys=SecurityConfig.from_settings(
                DatabaseSettings(webhook_encryption_keys=f"1:{generate_encryption_key()}")
            ).webhook_keys,
            production=True,
        )
        async with UnitOfWork(
            rw_db.sessionmaker, client_id=tenant.client_id, security=strict
        ) as uow:
            with pytest.raises(ValidationError, match="https"):
                await uow.webhooks.create(client_id=tenant.client_id, url="http://x.example/h")
            hook = await uow.webhooks.create(client_id=tenant.client_id, url="https://x.example/h")
            with pytest.raises(ValidationError, match="https"):
                await uow.webhooks.update(hook.id, url="http://x.example/h")
