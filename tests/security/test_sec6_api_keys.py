"""T-SEC-6: API keys are stored as digests only, several per client, revocable."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from biotech_ma_db import Database, UnitOfWork
from biotech_ma_db.repositories import api_key as api_key_module
from biotech_ma_db.repositories.api_key import (
    API_KEY_PREFIX,
    API_KEY_PREFIX_LENGTH,
    hash_api_key,
)
from tests.sent_statements import SentStatements

from .conftest import Figure, Secured, new_tenant

WINDOW = 9  # longer than the 8 random characters kept in key_prefix


class _HmacSpy:
    """Stands in for the ``hmac`` module inside the API-key repository."""

    def __init__(self, compare: Any) -> None:
        self.new = hmac.new
        self.compare_digest = compare


def _windows(secret_part: str, size: int = WINDOW) -> Iterator[str]:
    return (secret_part[i : i + size] for i in range(len(secret_part) - size + 1))


class TestStorage:
    """Only digests, a display prefix and the last 4 characters are stored."""

    async def test_several_keys_digests_only_never_a_parameter(
        self, rw_db: Database, secured: Secured, figure: Figure
    ) -> None:
        # Parameters sent either way: SQLAlchemy's cursor, or asyncpg directly (fast paths).
        async with SentStatements(rw_db.engine) as recorder:
            tenant = await new_tenant(rw_db, "Key holder")
            keys = [tenant.api_key]
            async with rw_db.unit_of_work(client_id=tenant.client_id) as uow:
                for label in ("ci", "backup"):
                    _, key = await uow.api_keys.issue(tenant.client_id, name=label)
                    keys.append(key)
                await uow.commit()
            for key in keys:
                async with rw_db.unit_of_work() as uow:
                    client = await uow.clients.authenticate(key)
                    assert client is not None
                    assert client.id == tenant.client_id
        for key in keys:
            assert key.startswith(API_KEY_PREFIX)
            assert len(key) - len(API_KEY_PREFIX) == 43  # 32 bytes of base64url
        conn = await secured.connect("app_rw")
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('app.client_id', $1, true)", str(tenant.client_id)
                )
                stored = [
                    str(value)
                    for table in ("api_keys", "clients")
                    for row in await conn.fetch(f"SELECT * FROM {table}")
                    for value in row.values()
                ]
                rows = await conn.fetch("SELECT key_hash, key_prefix, last4 FROM api_keys")
        finally:
            await conn.close()
        leaked = [
            window
            for key in keys
            for window in _windows(key[len(API_KEY_PREFIX) :])
            if any(window in value for value in stored)
        ]
        assert leaked == []
        assert not any(key in value for key in keys for value in stored)
        assert {row["key_hash"] for row in rows} == {hash_api_key(key) for key in keys}
        assert {(row["key_prefix"], row["last4"]) for row in rows} == {
            (key[:API_KEY_PREFIX_LENGTH], key[-4:]) for key in keys
        }
        parameter_sets = [repr(sent.params) for sent in recorder.sent]
        in_parameters = sum(key in sent for key in keys for sent in parameter_sets)
        assert in_parameters == 0
        figure(
            f"{len(keys)} active keys for one client: 0 substrings (>= {WINDOW} chars) of any "
            f"key in {len(stored)} stored values; 0 plaintext keys in "
            f"{len(parameter_sets)} SQL parameter sets"
        )


class TestVerification:
    """Lookup by digest, compare_digest, revocation, expiry, pepper."""

    async def test_revoked_expired_and_foreign_pepper_fail(
        self, rw_db: Database, monkeypatch: pytest.MonkeyPatch, figure: Figure
    ) -> None:
        compared: list[int] = []
        real = hmac.compare_digest

        def counting(a: Any, b: Any) -> bool:
            compared.append(1)
            return real(a, b)

        monkeypatch.setattr(api_key_module, "hmac", _HmacSpy(counting))
        tenant = await new_tenant(rw_db, "Rotator")
        async with rw_db.unit_of_work(client_id=tenant.client_id) as uow:
            spare, spare_key = await uow.api_keys.issue(tenant.client_id, name="spare")
            _, expired_key = await uow.api_keys.issue(
                tenant.client_id, expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            )
            (first,) = [
                k
                for k in await uow.api_keys.list_for_client(tenant.client_id)
                if k.name == "primary"
            ]
            await uow.api_keys.revoke(first.id)
            await uow.commit()
        outcomes = {}
        async with rw_db.unit_of_work() as uow:
            outcomes["revoked"] = await uow.clients.authenticate(tenant.api_key)
            outcomes["expired"] = await uow.clients.authenticate(expired_key)
            outcomes["tampered"] = await uow.clients.authenticate(
                spare_key[:-1] + ("A" if spare_key[-1] != "A" else "B")
            )
        async with UnitOfWork(rw_db.sessionmaker, api_key_pepper=b"another-pepper") as uow:
            outcomes["other pepper"] = await uow.clients.authenticate(spare_key)
        async with rw_db.unit_of_work() as uow:
            still = await uow.clients.authenticate(spare_key)
        assert all(value is None for value in outcomes.values()), outcomes
        assert still is not None
        assert still.id == tenant.client_id
        assert compared, "the digest was not compared with hmac.compare_digest"
        async with rw_db.unit_of_work(client_id=tenant.client_id) as uow:
            listed = await uow.api_keys.list_for_client(tenant.client_id)
            assert len(listed) == 2  # the spare and the expired key; the revoked one is gone
            assert spare.id in {k.id for k in listed}
            assert all("key_hash" not in k.__dict__ for k in listed)
        figure(
            "revoked, expired, tampered and other-pepper keys: 4/4 refused; the other "
            f"active key still works; compare_digest used ({len(compared)} calls)"
        )

    async def test_key_of_another_client_does_not_cross_a_scope(self, rw_db: Database) -> None:
        a = await new_tenant(rw_db, "Scope A")
        b = await new_tenant(rw_db, "Scope B")
        async with rw_db.unit_of_work(client_id=a.client_id) as uow:
            assert await uow.clients.authenticate(b.api_key) is None
            assert (await uow.clients.authenticate(a.api_key)) is not None


class TestTiming:
    """A smoke test: verification time does not depend on how much of a key is right."""

    def test_no_correlation_with_prefix_similarity(self, figure: Figure) -> None:
        pepper = secrets.token_bytes(32)
        real = API_KEY_PREFIX + secrets.token_urlsafe(32)
        stored = hash_api_key(real, pepper)
        near = [real[:-1] + c for c in "ABCDEFGHIJ" if c != real[-1]][:8]
        far = [API_KEY_PREFIX + secrets.token_urlsafe(32) for _ in range(8)]
        trials = 10_000

        def verify(candidate: str) -> bool:
            return hmac.compare_digest(hash_api_key(candidate, pepper), stored)

        timings: dict[str, list[float]] = {"near": [], "far": [], "far2": []}
        for i in range(trials):
            for group, pool in (("near", near), ("far", far), ("far2", far)):
                candidate = pool[i % len(pool)]
                started = time.perf_counter_ns()
                verify(candidate)
                timings[group].append(time.perf_counter_ns() - started)
        medians = {group: statistics.median(values) for group, values in timings.items()}
        difference = abs(medians["near"] - medians["far"])
        noise = abs(medians["far2"] - medians["far"])
        # Same work for every candidate: the gap stays within a few percent.
        assert difference <= max(0.15 * medians["far"], 3 * noise)
        figure(
            f"{trials:,} trials per group: median near-miss {medians['near']:.0f} ns, random "
            f"{medians['far']:.0f} ns (difference {difference:.0f} ns, noise {noise:.0f} ns)"
        )
