"""``UnitOfWork``: every repository over one session and one transaction.

::

    async with db.unit_of_work(actor="ingest-bot", reason="nightly load") as uow:
        company = await uow.companies.create(ticker="ABCD", name="ABC Therapeutics")
        await uow.signals.create(company_id=company.id, signal_type="news", ...)
        await uow.commit()          # explicit; leaving without it rolls back

Rules (after cosmicpython's unit of work):

- ``commit()`` is explicit.  Leaving the block without it, or with an exception, rolls
  back.  A failure while cleaning up after an exception is logged and attached to that
  exception as a note; it never replaces it.  Errors leave as the library's typed errors.
- One task at a time: a unit of work is bound to the task that entered it, and use from
  any other task while that one is alive raises
  :class:`~biotech_ma_db.errors.UnitOfWorkError` (an ``AsyncSession`` must not be shared
  between concurrent tasks).  Once the owning task has finished, the next task to use the
  unit of work takes it over (this is how a pytest fixture hands one to a test).
- ``actor``/``reason`` fill the audit columns and ``audit_log`` on every flush
  (:mod:`biotech_ma_db.auditing`).
- ``read_only=True`` starts every transaction with ``SET TRANSACTION READ ONLY``; a write
  then fails with :class:`~biotech_ma_db.errors.PermissionDeniedError` (SQLSTATE 25006).
- ``client_id`` is published to the database per transaction with
  ``set_config('app.client_id', ..., true)`` (row-level security policies read it).
  Transaction-local, so it never outlives the transaction on a pooled (or pgbouncer)
  server connection.  With ``reset_client_scope`` (on behind a transaction pooler) a unit
  of work without a client publishes an empty value, so a server connection that
  someone poisoned with a session-level ``SET app.client_id`` still shows it no row.
- ``isolation_level`` (``"REPEATABLE READ"``, ``"SERIALIZABLE"``) is set at the start of
  every transaction with ``SET TRANSACTION``.
- If the connection dies while ``COMMIT`` is in flight, :meth:`UnitOfWork.commit` raises
  :class:`~biotech_ma_db.errors.CommitOutcomeUnknownError`: the work may or may not have
  been committed.

:func:`run_in_transaction` (``Database.run_in_transaction``) is the retry loop: it runs a
function in a fresh unit of work, commits, and re-runs the whole unit on the transient
errors of :func:`~biotech_ma_db.errors.is_transient`, with exponential backoff and full
jitter, bounded by a number of attempts and a deadline::

    async def deactivate(uow: UnitOfWork) -> None:
        await uow.alerts.update(alert_id, is_active=False)

    await db.run_in_transaction(deactivate, isolation_level="SERIALIZABLE", idempotent=True)
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Generic, Literal, Self, TypeVar, cast, get_args, overload

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from biotech_ma_db.auditing import AUDIT_INFO_KEY, AuditContext, install_audit_listeners
from biotech_ma_db.errors import (
    CommitOutcomeUnknownError,
    TransientDatabaseError,
    UnitOfWorkError,
    ValidationError,
    is_commit_outcome_unknown,
    translate_error,
)
from biotech_ma_db.repositories import (
    AcquirerMatchRepository,
    AlertRepository,
    ApiKeyRepository,
    AuditLogRepository,
    ClientRepository,
    CompanyRepository,
    DrugCandidateRepository,
    ReportRepository,
    ScoreRepository,
    SignalRepository,
    WebhookRepository,
    translating_errors,
)
from biotech_ma_db.security import SecurityConfig

__all__ = [
    "TRANSACTION_INFO_KEY",
    "IsolationLevel",
    "RetryEvent",
    "TransactionSettings",
    "UnitOfWork",
    "run_in_transaction",
]

logger = logging.getLogger("biotech_ma_db.unit_of_work")
retry_logger = logging.getLogger("biotech_ma_db.retry")

IsolationLevel = Literal["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]
"""Transaction isolation levels a unit of work may ask for."""

TRANSACTION_INFO_KEY: Final = "biotech_ma_db.transaction"
"""Key of the :class:`TransactionSettings` in ``Session.info``."""

RepositoryT = TypeVar("RepositoryT")
ResultT = TypeVar("ResultT")
_MAX_LABEL_LENGTH = 200


@dataclass(frozen=True, slots=True)
class TransactionSettings:
    """What every transaction of a unit of work's session starts with.

    Attributes:
        read_only: Run ``SET TRANSACTION READ ONLY``.
        client_id: Publish ``app.client_id`` for row-level security.
        reset_client: Without ``client_id``, publish an empty ``app.client_id``.
        isolation_level: Run ``SET TRANSACTION ISOLATION LEVEL ...``.
    """

    read_only: bool = False
    client_id: int | None = None
    reset_client: bool = False
    isolation_level: IsolationLevel | None = None


class _RepositoryAttribute(Generic[RepositoryT]):
    """``uow.companies`` and friends: built on first use, checked on every access."""

    def __init__(self, factory: Callable[[UnitOfWork], RepositoryT]) -> None:
        self._factory = factory
        self._name = ""

    def __set_name__(self, owner: type[UnitOfWork], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type[UnitOfWork]) -> Self: ...

    @overload
    def __get__(self, instance: UnitOfWork, owner: type[UnitOfWork]) -> RepositoryT: ...

    def __get__(self, instance: UnitOfWork | None, owner: type[UnitOfWork]) -> Self | RepositoryT:
        if instance is None:
            return self
        instance.check_usable()
        cache = instance._repositories
        repository = cache.get(self._name)
        if repository is None:
            repository = self._factory(instance)
            cache[self._name] = repository
        return cast("RepositoryT", repository)


class UnitOfWork:
    """One session, one transaction, every repository.

    Args:
        sessionmaker: Where the session comes from (``Database.sessionmaker``).
        read_only: Start every transaction ``READ ONLY``.
        actor: Who makes the changes (audit columns and ``audit_log``).
        reason: Why (``change_reason`` and ``audit_log.reason``).
        client_id: The API client the work is done for (row-level security).
        api_key_pepper: Secret of the API-key HMAC used by ``uow.clients`` and
            ``uow.api_keys`` (default: ``security``'s).
        security: Pepper, webhook-secret cipher and https rule
            (:class:`~biotech_ma_db.security.SecurityConfig`; development values when
            omitted).
        reset_client_scope: Without ``client_id``, publish an empty ``app.client_id`` in
            every transaction (one more round trip; ``Database`` turns it on behind
            pgbouncer).
        isolation_level: Isolation of every transaction (server default when omitted).
    """

    companies = _RepositoryAttribute(lambda uow: CompanyRepository(uow.session))
    drug_candidates = _RepositoryAttribute(lambda uow: DrugCandidateRepository(uow.session))
    signals = _RepositoryAttribute(lambda uow: SignalRepository(uow.session))
    scores = _RepositoryAttribute(lambda uow: ScoreRepository(uow.session))
    acquirer_matches = _RepositoryAttribute(lambda uow: AcquirerMatchRepository(uow.session))
    reports = _RepositoryAttribute(lambda uow: ReportRepository(uow.session))
    alerts = _RepositoryAttribute(lambda uow: AlertRepository(uow.session))
    webhooks = _RepositoryAttribute(
        lambda uow: WebhookRepository(
            uow.session, cipher=uow.security.cipher(), https_only=uow.security.https_only
        )
    )
    clients = _RepositoryAttribute(lambda uow: ClientRepository(uow.session, pepper=uow.pepper()))
    api_keys = _RepositoryAttribute(lambda uow: ApiKeyRepository(uow.session, pepper=uow.pepper()))
    audit_log = _RepositoryAttribute(lambda uow: AuditLogRepository(uow.session))

    read_only: bool
    actor: str | None
    reason: str | None
    client_id: int | None
    api_key_pepper: bytes | str | None
    security: SecurityConfig
    reset_client_scope: bool
    isolation_level: IsolationLevel | None

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession] | None,
        *,
        read_only: bool = False,
        actor: str | None = None,
        reason: str | None = None,
        client_id: int | None = None,
        api_key_pepper: bytes | str | None = None,
        security: SecurityConfig | None = None,
        reset_client_scope: bool = False,
        isolation_level: IsolationLevel | None = None,
    ) -> None:
        if isolation_level is not None and isolation_level not in get_args(IsolationLevel):
            raise ValidationError(
                "isolation_level", f"expected one of {', '.join(get_args(IsolationLevel))}"
            )
        self.isolation_level = isolation_level
        self._sessionmaker = sessionmaker
        self.read_only = read_only
        self.actor = _label("actor", actor)
        self.reason = _label("reason", reason)
        if client_id is not None and (
            isinstance(client_id, bool) or not isinstance(client_id, int)
        ):
            raise ValidationError("client_id", "expected an integer id")
        self.client_id = client_id
        self.api_key_pepper = api_key_pepper
        self.security = security if security is not None else SecurityConfig()
        self.reset_client_scope = reset_client_scope
        self._external: AsyncSession | None = None
        self._session: AsyncSession | None = None
        self._owner: asyncio.Task[object] | None = None
        self._repositories: dict[str, object] = {}

    @classmethod
    def over_session(
        cls,
        session: AsyncSession,
        *,
        actor: str | None = None,
        reason: str | None = None,
        client_id: int | None = None,
        api_key_pepper: bytes | str | None = None,
        security: SecurityConfig | None = None,
    ) -> Self:
        """A unit of work over an existing session, which it neither creates nor closes.

        ``commit()`` and ``rollback()`` act on that session (with a session joined to an
        outer transaction in ``create_savepoint`` mode, as in the pytest ``uow``
        fixture, they release or roll back a savepoint).
        """
        uow = cls(
            None,
            actor=actor,
            reason=reason,
            client_id=client_id,
            api_key_pepper=api_key_pepper,
            security=security,
        )
        uow._external = session
        return uow

    def __repr__(self) -> str:
        state = "active" if self._session is not None else "idle"
        return f"<UnitOfWork {state} actor={self.actor!r} read_only={self.read_only}>"

    def pepper(self) -> bytes | str:
        """The API-key pepper: ``api_key_pepper`` if given, else ``security``'s.

        Raises:
            SettingsError: In production without ``DB_API_KEY_PEPPER``.
        """
        return self.api_key_pepper if self.api_key_pepper is not None else self.security.pepper()

    @property
    def session(self) -> AsyncSession:
        """The session of the current ``async with`` block."""
        self.check_usable()
        assert self._session is not None
        return self._session

    def check_usable(self) -> None:
        """Raise unless inside ``async with`` and on the owning task.

        Raises:
            UnitOfWorkError: Otherwise.
        """
        if self._session is None:
            raise UnitOfWorkError("the unit of work is not active: use it inside `async with`")
        current = asyncio.current_task()
        if current is self._owner:
            return
        if self._owner is not None and not self._owner.done():
            raise UnitOfWorkError(
                "the unit of work belongs to another task; create one unit of work per task"
            )
        # The entering task has finished (e.g. a pytest fixture's setup task): hand over.
        self._owner = current

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise UnitOfWorkError("the unit of work is already active; create a new one")
        install_audit_listeners()
        _install_transaction_listener()
        session = self._external
        if session is None:
            if self._sessionmaker is None:
                raise UnitOfWorkError("the unit of work has no session factory")
            session = self._sessionmaker()
        session.info[AUDIT_INFO_KEY] = AuditContext(actor=self.actor, reason=self.reason)
        session.info[TRANSACTION_INFO_KEY] = TransactionSettings(
            read_only=self.read_only,
            client_id=self.client_id,
            reset_client=self.reset_client_scope,
            isolation_level=self.isolation_level,
        )
        self._session = session
        self._owner = asyncio.current_task()
        self._repositories = {}
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._session
        if session is None:
            return
        try:
            await self._finish(session, exc)
        finally:
            self._session = None
            self._owner = None
            self._repositories = {}
        if isinstance(exc, Exception):
            translated = translate_error(exc)
            if translated is not exc:
                raise translated from exc

    async def commit(self) -> None:
        """Commit everything done so far; the unit of work stays usable afterwards.

        Raises:
            CommitOutcomeUnknownError: The connection was lost (or the client timed out)
                while ``COMMIT`` was in flight: the work may or may not have been committed.
                Re-run it only if it is idempotent, or check first.
        """
        session = self.session
        with translating_errors():
            await session.flush()  # a failure here is certain: nothing was committed
        try:
            await session.commit()
        except Exception as exc:
            if is_commit_outcome_unknown(exc):
                raise CommitOutcomeUnknownError(
                    "the connection was lost while COMMIT was in flight; the transaction "
                    "may or may not have been committed",
                    sqlstate=getattr(translate_error(exc), "sqlstate", None),
                ) from exc
            translated = translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def rollback(self) -> None:
        """Throw away everything not committed yet; the unit of work stays usable."""
        session = self.session
        with translating_errors():
            await session.rollback()

    async def _finish(self, session: AsyncSession, exc: BaseException | None) -> None:
        """Roll back and release the session without ever hiding ``exc``."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if exc is not None or self._external is not None:
            steps.append(("rollback", session.rollback))
        if self._external is None:
            # close() rolls back too, but leaves loaded objects readable (detached, not
            # expired), so results of a committed unit of work can be used afterwards.
            steps.append(("close", session.close))
        first_error: Exception | None = None
        for name, step in steps:
            try:
                await step()
            except Exception as cleanup_error:
                if exc is None:
                    first_error = first_error or cleanup_error
                    continue
                logger.warning(
                    "unit of work %s failed while handling %s",
                    name,
                    type(exc).__name__,
                    exc_info=cleanup_error,
                )
                exc.add_note(f"unit of work {name} also failed: {cleanup_error!r}")
        self._forget(session)
        if first_error is not None:
            translated = translate_error(first_error)
            if translated is first_error:
                raise first_error
            raise translated from first_error

    def _forget(self, session: AsyncSession) -> None:
        session.info.pop(AUDIT_INFO_KEY, None)
        session.info.pop(TRANSACTION_INFO_KEY, None)


def _label(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value or len(value) > _MAX_LABEL_LENGTH:
        raise ValidationError(field, f"expected text of at most {_MAX_LABEL_LENGTH} characters")
    return value


def _install_transaction_listener() -> None:
    if not event.contains(Session, "after_begin", _start_transaction):
        event.listen(Session, "after_begin", _start_transaction)


def _start_transaction(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    """Apply the unit of work's :class:`TransactionSettings` as each transaction begins."""
    settings = session.info.get(TRANSACTION_INFO_KEY)
    if not isinstance(settings, TransactionSettings) or transaction.nested:
        return
    modes = []
    if settings.isolation_level is not None:
        modes.append(f"ISOLATION LEVEL {settings.isolation_level}")  # validated literal
    if settings.read_only:
        modes.append("READ ONLY")
    if modes:
        connection.exec_driver_sql(f"SET TRANSACTION {', '.join(modes)}")
    if settings.client_id is not None:
        connection.execute(
            text("SELECT set_config('app.client_id', :client_id, true)"),
            {"client_id": str(settings.client_id)},
        )
    elif settings.reset_client:
        connection.exec_driver_sql("SELECT set_config('app.client_id', '', true)")


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One failed attempt of :func:`run_in_transaction` that will be retried.

    Attributes:
        attempt: Number of the attempt that failed (1 for the first).
        error: The typed error it failed with (its ``__cause__`` is the driver's).
        delay: Seconds slept before the next attempt.
    """

    attempt: int
    error: BaseException
    delay: float


# Jitter only spreads retries out; it needs no cryptographic quality.
_jitter = random.Random()  # noqa: S311


async def run_in_transaction(
    new_unit: Callable[[], UnitOfWork],
    fn: Callable[[UnitOfWork], Awaitable[ResultT]],
    *,
    attempts: int = 4,
    deadline: float | None = 30.0,
    idempotent: bool = False,
    retry_on: tuple[type[BaseException], ...] = (),
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    on_retry: Callable[[RetryEvent], object] | None = None,
) -> ResultT:
    """Run ``fn(uow)`` in a new unit of work and commit; re-run it on transient errors.

    The whole unit is the retry unit (SQLAlchemy cannot resume a transaction on a new
    connection): ``fn`` runs again from the start in a fresh unit of work, so it must not
    have effects outside the database that cannot be repeated.  ``fn`` should not commit;
    this function commits after it returns.

    Retried: every error :func:`~biotech_ma_db.errors.is_transient` accepts (40001,
    40P01, 08xxx, 57P01-57P03, socket errors, asyncpg connection errors, cached statements
    invalidated by DDL), plus ``retry_on``.  A lost connection while ``COMMIT`` was in
    flight (:class:`~biotech_ma_db.errors.CommitOutcomeUnknownError`) is retried only when
    ``idempotent`` is true.  Timeouts, constraint violations and cancellation never are.

    Between attempts it sleeps a random time between 0 and
    ``min(max_delay, base_delay * 2 ** (attempt - 1))`` ("full jitter").

    Args:
        new_unit: Builds the unit of work for one attempt (``db.unit_of_work(...)``).
        fn: The work; its return value is returned.
        attempts: At most this many runs (>= 1).
        deadline: No new attempt starts more than this many seconds after the call
            (``None``: only ``attempts`` bounds it).  A running attempt is bounded by the
            connection's timeouts, not by this.
        idempotent: ``fn`` may safely run twice even if the first run was committed
            (e.g. it writes with an idempotency key): also retry after an unknown commit.
        retry_on: More exception types to treat as transient (e.g.
            :class:`~biotech_ma_db.errors.ConcurrencyError` for optimistic locking).
        base_delay: Backoff of the first retry, in seconds.
        max_delay: Cap of the backoff, in seconds.
        on_retry: Called with a :class:`RetryEvent` before each retry (metrics, tests).

    Returns:
        What ``fn`` returned in the attempt that committed.

    Raises:
        The typed error of the last attempt (e.g. ``DatabaseUnavailableError`` or
        ``SerializationFailureError``) once attempts or the deadline run out, with a
        note saying how many attempts were made; any non-transient error at once.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    give_up_at = None if deadline is None else started + deadline
    attempt = 0
    while True:
        attempt += 1
        try:
            async with new_unit() as uow:
                result = await fn(uow)
                await uow.commit()
        except Exception as exc:
            error = translate_error(exc)
            retryable = (
                isinstance(error, (TransientDatabaseError, *retry_on))
                or isinstance(exc, retry_on)
                or (idempotent and isinstance(error, CommitOutcomeUnknownError))
            )
            if not retryable:
                if error is exc:
                    raise
                raise error from exc
            delay = _jitter.uniform(0.0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            now = loop.time()
            if give_up_at is not None:
                # The last attempt starts at the deadline at the latest, never after it.
                delay = min(delay, give_up_at - now)
            if attempt >= attempts or delay < 0:
                elapsed = now - started
                error.add_note(
                    f"run_in_transaction gave up after {attempt} attempts in {elapsed:.1f} s"
                )
                if error is exc:
                    raise
                raise error from exc
            sqlstate = getattr(error, "sqlstate", None)
            retry_logger.info(
                "retrying unit of work after %s%s (attempt %d of %d, next in %.3f s)",
                type(error).__name__,
                f" [SQLSTATE {sqlstate}]" if sqlstate else "",
                attempt,
                attempts,
                delay,
            )
            if on_retry is not None:
                on_retry(RetryEvent(attempt=attempt, error=error, delay=delay))
            await asyncio.sleep(delay)
        else:
            return result
