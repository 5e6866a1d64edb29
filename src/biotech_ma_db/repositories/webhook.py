"""``WebhookRepository``: webhooks (secret never listed) and their delivery queue.

The queue is the ``webhook_deliveries`` table.  A worker claims due deliveries inside
its unit of work with ``FOR UPDATE SKIP LOCKED`` (so concurrent workers never get the same
row), sends them, and records the outcome with :meth:`WebhookRepository.mark_delivered`
or :meth:`WebhookRepository.mark_failed` before committing.
"""

from __future__ import annotations

import builtins
import datetime as dt
import secrets
from collections.abc import Mapping
from typing import ClassVar, Final

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import selectinload

from biotech_ma_db.errors import NotFoundError, ValidationError
from biotech_ma_db.models import DeliveryStatus, Webhook, WebhookDelivery
from biotech_ma_db.repositories.base import Repository, check_id
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
    check_limit,
)
from biotech_ma_db.repositories.validation import rules_for

__all__ = ["MAX_BACKOFF_SECONDS", "WebhookRepository"]

MAX_BACKOFF_SECONDS: Final = 86_400
"""Longest wait between two attempts, whatever the exponential schedule says."""

_MAX_ERROR_LENGTH: Final = 2_000


class WebhookRepository(Repository[Webhook]):
    """Webhooks of API clients, and the queue of their deliveries.

    ``Webhook.secret`` is deferred with ``raiseload`` by the model: no listing here loads
    it; :meth:`get_signing_secret` is the one way to read it.
    """

    model = Webhook
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": Webhook.id,
        "url": Webhook.url,
        "created_at": Webhook.created_at,
        "last_delivery_at": Webhook.last_delivery_at,
        "consecutive_failures": Webhook.consecutive_failures,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "client_id": Webhook.client_id,
        "is_active": Webhook.is_active,
    }
    default_order: ClassVar[SortSpec] = "id"

    async def create(self, **values: object) -> Webhook:
        """Register a webhook; a signing ``secret`` is generated when none is given."""
        values.setdefault("secret", secrets.token_urlsafe(32))
        return await super().create(**values)

    async def list_for_client(
        self, client_id: int, *, active_only: bool = True, limit: int = DEFAULT_LIMIT
    ) -> builtins.list[Webhook]:
        """A client's webhooks, without their secrets."""
        criteria = [Webhook.client_id == check_id(client_id, "client_id")]
        if active_only:
            criteria.append(Webhook.is_active.is_(True))
        return await self.list(*criteria, limit=check_limit(limit))

    async def get_signing_secret(self, webhook_id: int) -> str:
        """The secret that signs the webhook's payloads.

        Raises:
            NotFoundError: No such live webhook.
        """
        check_id(webhook_id, "webhook_id")
        stmt = select(Webhook.secret).where(Webhook.id == webhook_id, Webhook.deleted_at.is_(None))
        rows = await self._scalars(stmt)
        if not rows:
            raise NotFoundError("Webhook", webhook_id)
        return rows[0]

    async def enqueue_delivery(
        self,
        webhook_id: int,
        event_type: str,
        payload: Mapping[str, object],
        event_id: str | None = None,
    ) -> WebhookDelivery | None:
        """Queue one event for one webhook, at most once per ``event_id``.

        ``INSERT ... ON CONFLICT (webhook_id, event_id) DO NOTHING``: enqueuing the same
        event again (a retried unit of work, a replayed upstream event) writes nothing.
        Without ``event_id`` the server draws a random one.

        Returns:
            The new delivery, or ``None`` when the event was already queued.
        """
        values: dict[str, object] = {
            "webhook_id": webhook_id,
            "event_type": event_type,
            "payload": payload,
        }
        if event_id is not None:
            values["event_id"] = event_id
        cleaned = rules_for(WebhookDelivery).create(values)
        stmt = (
            insert(WebhookDelivery)
            .values(**cleaned)
            .on_conflict_do_nothing(
                index_elements=[WebhookDelivery.webhook_id, WebhookDelivery.event_id]
            )
            .returning(WebhookDelivery)
        )
        rows = await self._scalars(stmt)
        return rows[0] if rows else None

    async def claim_due_deliveries(self, limit: int = 100) -> builtins.list[WebhookDelivery]:
        """Lock and return deliveries that are due, oldest due first.

        ``SELECT ... WHERE status IN ('pending', 'failed') AND next_attempt_at <= now()
        ORDER BY next_attempt_at FOR UPDATE SKIP LOCKED LIMIT n``, for active, live
        webhooks.  The rows stay locked until the transaction ends, so two concurrent
        units of work never claim the same delivery.  Each comes with its ``webhook``
        loaded (without the secret).
        """
        live_webhooks = select(Webhook.id).where(
            Webhook.is_active.is_(True), Webhook.deleted_at.is_(None)
        )
        stmt = (
            select(WebhookDelivery)
            .where(
                WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.FAILED]),
                WebhookDelivery.next_attempt_at <= func.now(),
                WebhookDelivery.webhook_id.in_(live_webhooks),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(check_limit(limit))
            .with_for_update(skip_locked=True, of=WebhookDelivery)
            .options(selectinload(WebhookDelivery.webhook))
            .execution_options(populate_existing=True)
        )
        return await self._scalars(stmt)

    async def mark_delivered(self, delivery_id: int, *, status_code: int = 200) -> WebhookDelivery:
        """Record a successful delivery and reset the webhook's failure streak."""
        code = _status_code(status_code)
        delivery = await self._locked_delivery(delivery_id)
        delivery.status = DeliveryStatus.DELIVERED
        delivery.attempts += 1
        delivery.delivered_at = dt.datetime.now(dt.UTC)
        delivery.last_error = None
        delivery.next_attempt_at = None
        await self._flush()
        await self._record_outcome(delivery.webhook_id, code, failed=False)
        return delivery

    async def mark_failed(
        self, delivery_id: int, *, error: str, status_code: int | None = None
    ) -> WebhookDelivery:
        """Record a failed attempt and schedule the next one, or give up.

        The next attempt waits ``backoff_seconds * 2 ** (attempts - 1)`` seconds (at most
        :data:`MAX_BACKOFF_SECONDS`).  After the first attempt and ``max_retries``
        retries the delivery is ``dead`` and never claimed again.

        Args:
            delivery_id: The delivery.
            error: What went wrong (cut to 2,000 characters).
            status_code: The HTTP status the endpoint answered, if any.
        """
        code = _status_code(status_code) if status_code is not None else None
        if not isinstance(error, str):
            raise ValidationError("error", f"expected text, got {type(error).__name__}")
        delivery = await self._locked_delivery(delivery_id)
        webhook = delivery.webhook
        delivery.attempts += 1
        delivery.last_error = error.replace("\x00", "")[:_MAX_ERROR_LENGTH]
        if delivery.attempts > webhook.max_retries:
            delivery.status = DeliveryStatus.DEAD
            delivery.next_attempt_at = None
        else:
            delay = min(webhook.backoff_seconds * 2 ** (delivery.attempts - 1), MAX_BACKOFF_SECONDS)
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
        await self._flush()
        await self._record_outcome(delivery.webhook_id, code, failed=True)
        return delivery

    async def _locked_delivery(self, delivery_id: int) -> WebhookDelivery:
        check_id(delivery_id, "delivery_id")
        stmt = (
            select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .with_for_update(of=WebhookDelivery)
            .options(selectinload(WebhookDelivery.webhook))
            .execution_options(populate_existing=True)
        )
        rows = await self._scalars(stmt)
        if not rows:
            raise NotFoundError("WebhookDelivery", delivery_id)
        return rows[0]

    async def _record_outcome(
        self, webhook_id: int, status_code: int | None, *, failed: bool
    ) -> None:
        """Update the webhook's delivery statistics atomically, leaving ``version`` alone.

        Statistics are not configuration: two workers finishing deliveries of one webhook
        must not fail each other's optimistic lock.
        """
        stmt = (
            update(Webhook)
            .where(Webhook.id == webhook_id)
            .values(
                last_delivery_at=func.now(),
                last_status_code=status_code,
                consecutive_failures=Webhook.consecutive_failures + 1 if failed else 0,
            )
            .returning(Webhook)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        await self._scalars(stmt)


def _status_code(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValidationError("status_code", "expected an HTTP status from 100 to 599")
    return value
