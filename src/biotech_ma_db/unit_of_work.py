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
- ``read_only=True`` starts every transaction with ``SET TRANSACTION READ ONLY``, and a
  write (a flush with changes, Core DML, COPY) fails on the client, before any SQL, with
  :class:`~biotech_ma_db.errors.ReadOnlyViolationError` (a ``PermissionDeniedError``,
  SQLSTATE 25006).  ``Database`` runs read-only units on a read replica when one can take
  them (:mod:`biotech_ma_db.engine.routing`).
- After ``commit()`` of a unit that writes, :attr:`UnitOfWork.consistency_token` is the
  commit's WAL position when the database has read replicas: a read-only unit given it
  reads on a replica only once that replica has replayed the commit (read-your-writes).
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

:func:`~biotech_ma_db.retry.run_in_transaction` (``Database.run_in_transaction``) is the
retry loop; it is re-exported here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Self, TypeVar, cast, get_args, overload

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from biotech_ma_db.auditing import AUDIT_INFO_KEY, AuditContext, install_audit_listeners
from biotech_ma_db.engine.consistency import ConsistencyToken
from biotech_ma_db.engine.read_only import READ_ONLY_KEY, install_read_only_guard
from biotech_ma_db.engine.routing import SessionLease
from biotech_ma_db.engine.transactions import (
    TRANSACTION_INFO_KEY,
    IsolationLevel,
    TransactionSettings,
    install_transaction_listener,
)
from biotech_ma_db.errors import (
    CommitOutcomeUnknownError,
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
from biotech_ma_db.retry import RetryEvent, run_in_transaction
from biotech_ma_db.security import SecurityConfig
from biotech_ma_db.unit_events import UnitRecord, watch

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

RepositoryT = TypeVar("RepositoryT")
ResultT = TypeVar("ResultT")
_MAX_LABEL_LENGTH = 200


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
        opener: Where the session comes from instead of ``sessionmaker``: a coroutine
            that leases one (``Database`` routes read-only units to a replica this way).
        token_source: Called after each commit of a unit that writes; its answer becomes
            :attr:`consistency_token` (``Database`` passes one when it has replicas).

    Attributes:
        consistency_token: After ``commit()``, the WAL position of the commit, to pass as
            ``consistency=`` to a read-only unit of work that must see it; ``None`` before
            a commit, for read-only units, and when there is no ``token_source`` (no
            replicas: every read is on the primary and sees every commit anyway).
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
    consistency_token: ConsistencyToken | None

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
        opener: Callable[[], Awaitable[SessionLease]] | None = None,
        token_source: Callable[[], Awaitable[ConsistencyToken]] | None = None,
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
        self._opener = opener
        self._token_source = token_source
        self.consistency_token = None
        self._lease: SessionLease | None = None
        self._external: AsyncSession | None = None
        self._session: AsyncSession | None = None
        self._owner: asyncio.Task[object] | None = None
        self._repositories: dict[str, object] = {}
        self._record: UnitRecord | None = None  # set while observers or DEBUG logs listen

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
        _install_session_listeners()
        session = self._external
        if session is None and self._opener is not None:
            self._lease = await self._opener()
            session = self._lease.session
        if session is None:
            if self._sessionmaker is None:
                raise UnitOfWorkError("the unit of work has no session factory")
            session = self._sessionmaker()
        if self.read_only:
            session.info[READ_ONLY_KEY] = True
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
        self.consistency_token = None
        self._record = watch(self)
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
        record, self._record = self._record, None
        try:
            await self._finish(session, exc)
        except BaseException as error:
            if record is not None:
                record.finish(error)
            raise
        finally:
            self._session = None
            self._owner = None
            self._repositories = {}
        if record is not None:
            record.finish(exc)
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
        if self._record is not None:
            self._record.committed = True
        if self._token_source is not None and not self.read_only:
            self.consistency_token = await self._token_source()

    async def rollback(self) -> None:
        """Throw away everything not committed yet; the unit of work stays usable."""
        session = self.session
        with translating_errors():
            await session.rollback()
        if self._record is not None:
            self._record.committed = False

    async def _finish(self, session: AsyncSession, exc: BaseException | None) -> None:
        """Roll back and release the session without ever hiding ``exc``."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if exc is not None or self._external is not None:
            steps.append(("rollback", session.rollback))
        if self._external is None:
            # close() rolls back too, but leaves loaded objects readable (detached, not
            # expired), so results of a committed unit of work can be used afterwards.
            steps.append(("close", session.close))
        lease, self._lease = self._lease, None
        if lease is not None:
            steps.append(("release", lease.release))
        first_error: Exception | None = None
        try:
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
        finally:
            if lease is not None:
                await lease.release()  # no-op once released; not skipped by a cancellation
        self._forget(session)
        if first_error is not None:
            translated = translate_error(first_error)
            if translated is first_error:
                raise first_error
            raise translated from first_error

    def _forget(self, session: AsyncSession) -> None:
        session.info.pop(AUDIT_INFO_KEY, None)
        session.info.pop(TRANSACTION_INFO_KEY, None)
        session.info.pop(READ_ONLY_KEY, None)


def _label(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value or len(value) > _MAX_LABEL_LENGTH:
        raise ValidationError(field, f"expected text of at most {_MAX_LABEL_LENGTH} characters")
    return value


@functools.cache
def _install_session_listeners() -> None:
    """The session listeners every unit relies on, registered once per process.

    Each ``install_*`` is idempotent, but asking SQLAlchemy whether a listener is there
    costs tens of microseconds a call: more than the rest of entering a unit.
    """
    install_audit_listeners()
    install_transaction_listener()
    install_read_only_guard()
