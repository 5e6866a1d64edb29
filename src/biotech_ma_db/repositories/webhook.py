"""``WebhookRepository``: webhooks (secret never listed) and their delivery queue.

The queue is the ``webhook_deliveries`` table.  A worker claims due deliveries inside
its unit of work with ``FOR UPDATE SKIP LOCKED`` (so concurrent workers never get the same
row), sends them, and records the outcome with :meth:`WebhookRepository.mark_delivered`
or :meth:`WebhookRepository.mark_failed` before committing.

Signing secrets are stored encrypted (AES-256-GCM, see
:class:`~biotech_ma_db.security.SecretCipher`; the key version is in
``secret_key_version``) and decrypted only by
:meth:`WebhookRepository.get_signing_secret`; sign payloads with
:mod:`biotech_ma_db.webhook_signing`.  Under row-level security a client sees only its own
webhooks and deliveries; the delivery worker runs as ``app_worker``, whose policies span
every client.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import ClassVar, Final

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from biotech_ma_db.errors import NotFoundError, ValidationError
from biotech_ma_db.models import INCLUDE_DELETED, DeliveryStatus, Webhook, WebhookDelivery
from biotech_ma_db.repositories.base import Repository, check_id
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
    check_limit,
)
from biotech_ma_db.repositories.validation import rules_for
from biotech_ma_db.sa_internals import set_committed
from biotech_ma_db.security import SecretCipher
from biotech_ma_db.webhook_signing import generate_webhook_secret

__all__ = ["MAX_BACKOFF_SECONDS", "WebhookRepository"]

MAX_BACKOFF_SECONDS: Final = 86_400
"""Longest wait between two attempts, whatever the exponential schedule says."""

_MAX_ERROR_LENGTH: Final = 2_000
_MAX_SECRET_LENGTH: Final = 1_000


class WebhookRepository(Repository[Webhook]):
    """Webhooks of API clients, and the queue of their deliveries.

    ``Webhook.secret`` is deferred with ``raiseload`` by the model: no listing here loads
    it; :meth:`get_signing_secret` is the one way to read it.

    Args:
        session: The session every statement runs in.
        cipher: Encrypts and decrypts signing secrets; the development cipher when
            omitted (see :class:`~biotech_ma_db.security.SecurityConfig`).
        https_only: Refuse webhook URLs that are not ``https://`` (production).
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

    def __init__(
        self,
        session: AsyncSession,
        *,
        cipher: SecretCipher | None = None,
        https_only: bool = False,
    ) -> None:
        super().__init__(session)
        self._cipher = cipher if cipher is not None else SecretCipher.development()
        self._https_only = https_only

    async def create(self, **values: object) -> Webhook:
        """Register a webhook; a signing ``secret`` is generated when none is given.

        The secret is stored encrypted.  The returned object's ``secret`` holds the
        plaintext (in memory only, never written back) so it can be shown once.

        Raises:
            ValidationError: Before any SQL, for a bad value, or a non-https URL when
                ``https_only``.
        """
        plain = values.pop("secret", None)
        plain = generate_webhook_secret() if plain is None else _secret(plain)
        self._seal_values(values, plain)
        webhook = await super().create(**values)
        set_committed(webhook, "secret", plain)
        return webhook

    async def update(
        self, id_: int, /, *, expected_version: int | None = None, **values: object
    ) -> Webhook:
        """Change a webhook; a new ``secret`` is encrypted like on create."""
        plain = values.pop("secret", None)
        if plain is not None:
            plain = _secret(plain)
            self._seal_values(values, plain)
        elif "secret_key_version" in values:
            raise ValidationError("secret_key_version", "is set by the library")
        else:
            self._check_url(values)
        webhook = await super().update(id_, expected_version=expected_version, **values)
        if plain is not None:
            set_committed(webhook, "secret", plain)
        return webhook

    async def add_many(self, items: Iterable[Webhook]) -> builtins.list[Webhook]:
        """Insert webhooks built by the caller; plaintext secrets are encrypted first."""
        rows = builtins.list(items)
        for row in rows:
            state = getattr(row, "__dict__", {})
            plain = state.get("secret")
            if isinstance(plain, str) and state.get("secret_key_version") is None:
                row.secret, row.secret_key_version = self._cipher.encrypt(_secret(plain))
            self._check_url(state)
        return await super().add_many(rows)

    def _seal_values(self, values: dict[str, object], plain: str) -> None:
        if "secret_key_version" in values:
            raise ValidationError("secret_key_version", "is set by the library")
        self._check_url(values)
        values["secret"], values["secret_key_version"] = self._cipher.encrypt(plain)

    def _check_url(self, values: Mapping[str, object]) -> None:
        url = values.get("url")
        if self._https_only and isinstance(url, str) and not url.lower().startswith("https://"):
            raise ValidationError("url", "must be an https:// URL in production")

    async def reencrypt_secrets(self, limit: int = 500) -> int:
        """Re-seal up to ``limit`` secrets not sealed with the current key; returns how many.

        Covers secrets of older key versions this cipher still holds and the plain ones
        written before encryption (``secret_key_version`` NULL), soft-deleted webhooks
        included; secrets of versions it has no key for are left alone.  Run it after
        switching ``DB_WEBHOOK_ENCRYPTION_KEY_VERSION`` until it returns 0 (as
        ``app_worker``: under row-level security a client only reaches its own).
        """
        current = self._cipher.current_version
        older = [version for version in self._cipher.versions if version != current]
        stmt = (
            select(Webhook.id, Webhook.secret, Webhook.secret_key_version)
            .where(
                or_(
                    Webhook.secret_key_version.is_(None),
                    Webhook.secret_key_version.in_(older),
                )
            )
            .order_by(Webhook.id)
            .limit(check_limit(limit))
            .with_for_update(skip_locked=True, of=Webhook)
            .execution_options(**{INCLUDE_DELETED: True})
        )
        rows = (await self._execute(stmt)).all()
        for webhook_id, sealed, version in rows:
            plain = sealed if version is None else self._cipher.decrypt(sealed, version)
            new_sealed, new_version = self._cipher.encrypt(plain)
            await self._execute(
                update(Webhook)
                .where(Webhook.id == webhook_id)
                .values(secret=new_sealed, secret_key_version=new_version)
                .execution_options(synchronize_session=False, **{INCLUDE_DELETED: True})
            )
        return len(rows)

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
        stmt = select(Webhook.secret, Webhook.secret_key_version).where(
            Webhook.id == webhook_id, Webhook.deleted_at.is_(None)
        )
        rows = (await self._execute(stmt)).all()
        if not rows:
            raise NotFoundError("Webhook", webhook_id)
        sealed, version = rows[0]
        # NULL version: a secret written before encryption (reencrypt_secrets seals it).
        return str(sealed) if version is None else self._cipher.decrypt(sealed, version)

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


def _secret(value: object) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ValidationError("secret", "expected non-empty text without NUL bytes")
    if len(value) > _MAX_SECRET_LENGTH:
        raise ValidationError("secret", f"longer than {_MAX_SECRET_LENGTH} characters")
    return value
