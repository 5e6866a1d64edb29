"""``WebhookRepository``: secrets stay out of listings; the delivery queue."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    Database,
    DeliveryStatus,
    NotFoundError,
    ValidationError,
    WebhookDelivery,
    WebhookRepository,
)
from biotech_ma_db.repositories.webhook import MAX_BACKOFF_SECONDS
from biotech_ma_db.testing.factories import make_client, make_webhook, make_webhook_delivery


class TestWebhooks:
    """Listings never load the secret; it is read on purpose only."""

    async def test_secret_is_not_listed(self, db_session: AsyncSession) -> None:
        repo = WebhookRepository(db_session)
        client = await make_client(db_session)
        created = await repo.create(client_id=client.id, url="https://hooks.example.com/a")
        generated = created.secret
        assert len(generated) >= 32
        db_session.expunge_all()
        (listed,) = await repo.list_for_client(client.id)
        assert "secret" not in listed.__dict__
        with pytest.raises(InvalidRequestError):
            _ = listed.secret
        assert await repo.get_signing_secret(listed.id) == generated
        with pytest.raises(NotFoundError):
            await repo.get_signing_secret(987654321)

    async def test_inactive_and_validation(self, db_session: AsyncSession) -> None:
        repo = WebhookRepository(db_session)
        client = await make_client(db_session)
        await make_webhook(db_session, client_id=client.id, is_active=False)
        assert await repo.list_for_client(client.id) == []
        assert len(await repo.list_for_client(client.id, active_only=False)) == 1
        with pytest.raises(ValidationError):
            await repo.create(client_id=client.id, url="ftp://nope")


class TestQueue:
    """Enqueue once per event, claim with SKIP LOCKED, back off, give up."""

    async def test_enqueue_is_idempotent(self, db_session: AsyncSession) -> None:
        repo = WebhookRepository(db_session)
        webhook = await make_webhook(db_session)
        first = await repo.enqueue_delivery(webhook.id, "signal.created", {"a": 1}, "evt-1")
        assert first is not None
        assert first.status is DeliveryStatus.PENDING
        assert await repo.enqueue_delivery(webhook.id, "signal.created", {"a": 2}, "evt-1") is None
        anonymous = await repo.enqueue_delivery(webhook.id, "signal.created", {})
        assert anonymous is not None
        assert anonymous.event_id not in {"", "evt-1"}
        count = await db_session.scalar(
            select(func.count()).where(WebhookDelivery.webhook_id == webhook.id)
        )
        assert count == 2

    async def test_claim_mark_failed_backoff_and_dead(self, db_session: AsyncSession) -> None:
        repo = WebhookRepository(db_session)
        webhook = await make_webhook(db_session, max_retries=2, backoff_seconds=30)
        delivery = await make_webhook_delivery(db_session, webhook_id=webhook.id)
        claimed = await repo.claim_due_deliveries(limit=500)
        assert delivery.id in {d.id for d in claimed}
        assert delivery.webhook.url == webhook.url

        expected_waits = [30, 60]
        for attempt, wait in enumerate(expected_waits, start=1):
            before = dt.datetime.now(dt.UTC)
            failed = await repo.mark_failed(delivery.id, error="HTTP 503", status_code=503)
            assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, attempt)
            assert failed.next_attempt_at is not None
            delay = (failed.next_attempt_at - before).total_seconds()
            assert wait - 1 <= delay <= wait + 5
            assert webhook.consecutive_failures == attempt
            assert webhook.last_status_code == 503
        # Not due yet: the backoff keeps it out of the next claim.
        assert delivery.id not in {d.id for d in await repo.claim_due_deliveries(limit=500)}

        dead = await repo.mark_failed(delivery.id, error="x" * 5000 + "\x00")
        assert (dead.status, dead.attempts, dead.next_attempt_at) == (DeliveryStatus.DEAD, 3, None)
        assert dead.last_error is not None
        assert len(dead.last_error) == 2000
        delivery.next_attempt_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        await db_session.flush()
        assert delivery.id not in {d.id for d in await repo.claim_due_deliveries(limit=500)}

    async def test_backoff_is_capped(self, db_session: AsyncSession) -> None:
        repo = WebhookRepository(db_session)
        webhook = await make_webhook(db_session, max_retries=50, backoff_seconds=3600)
        delivery = await make_webhook_delivery(db_session, webhook_id=webhook.id, attempts=20)
        failed = await repo.mark_failed(delivery.id, error="slow")
        assert failed.next_attempt_at is not None
        delay = (failed.next_attempt_at - dt.datetime.now(dt.UTC)).total_seconds()
        assert delay <= MAX_BACKOFF_SECONDS

    async def test_mark_delivered_resets_failures(self, db_session: AsyncSession) -> None:
        repo = WebhookRepository(db_session)
        webhook = await make_webhook(db_session, consecutive_failures=4)
        delivery = await make_webhook_delivery(db_session, webhook_id=webhook.id)
        done = await repo.mark_delivered(delivery.id, status_code=204)
        assert (done.status, done.attempts) == (DeliveryStatus.DELIVERED, 1)
        assert done.delivered_at is not None
        assert (webhook.consecutive_failures, webhook.last_status_code) == (0, 204)
        assert webhook.version == 1
        assert delivery.id not in {d.id for d in await repo.claim_due_deliveries(limit=500)}
        with pytest.raises(ValidationError):
            await repo.mark_delivered(delivery.id, status_code=42)
        with pytest.raises(NotFoundError):
            await repo.mark_delivered(987654321)

    async def test_inactive_webhooks_are_not_claimed(self, db_session: AsyncSession) -> None:
        repo = WebhookRepository(db_session)
        webhook = await make_webhook(db_session, is_active=False)
        delivery = await make_webhook_delivery(db_session, webhook_id=webhook.id)
        assert delivery.id not in {d.id for d in await repo.claim_due_deliveries(limit=500)}


class TestConcurrentClaims:
    """Two units of work claiming at once never get the same delivery."""

    async def test_disjoint_claims(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            webhook = await make_webhook(uow)
            for _ in range(30):
                await make_webhook_delivery(uow, webhook_id=webhook.id)
            await uow.commit()

        first_claimed = asyncio.Event()
        release = asyncio.Event()
        claims: dict[str, list[int]] = {}

        async def worker(name: str, hold: bool) -> None:
            async with fresh_database.unit_of_work(actor=name) as uow:
                claimed = await uow.webhooks.claim_due_deliveries(limit=20)
                claims[name] = [d.id for d in claimed]
                if hold:
                    first_claimed.set()
                    await release.wait()
                for delivery in claimed:
                    await uow.webhooks.mark_delivered(delivery.id)
                await uow.commit()

        holder = asyncio.create_task(worker("a", hold=True))
        await first_claimed.wait()
        await worker("b", hold=False)
        release.set()
        await holder

        assert len(claims["a"]) == 20
        assert len(claims["b"]) == 10
        assert not set(claims["a"]) & set(claims["b"])
        async with fresh_database.unit_of_work() as uow:
            assert await uow.webhooks.claim_due_deliveries() == []

    async def test_many_workers_deliver_each_once(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            webhook = await make_webhook(uow)
            for _ in range(100):
                await make_webhook_delivery(uow, webhook_id=webhook.id)
            await uow.commit()
        delivered: list[int] = []

        async def worker() -> None:
            while True:
                async with fresh_database.unit_of_work() as uow:
                    claimed = await uow.webhooks.claim_due_deliveries(limit=7)
                    if not claimed:
                        return
                    for delivery in claimed:
                        await uow.webhooks.mark_delivered(delivery.id)
                    await uow.commit()
                delivered.extend(d.id for d in claimed)

        await asyncio.gather(*(worker() for _ in range(4)))
        assert len(delivered) == 100
        assert len(set(delivered)) == 100
