"""``SyncUnitOfWork``: the repositories of a unit of work, as blocking calls.

Each repository attribute is a :class:`BlockingRepository`: one generic proxy that turns
any public coroutine method of the async repository into a call that runs it on the
loop thread and returns its result.  The attribute's static type is the generated
Protocol of that repository (:mod:`biotech_ma_db.sync.repositories`), so a type checker
sees ``uow.companies.get_by_ticker("X")`` return ``Company | None``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Generic, Self, TypeVar, cast, overload

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
)
from biotech_ma_db.sync._loop import LoopThread
from biotech_ma_db.sync.repositories import (
    SyncAcquirerMatchRepository,
    SyncAlertRepository,
    SyncApiKeyRepository,
    SyncAuditLogRepository,
    SyncClientRepository,
    SyncCompanyRepository,
    SyncDrugCandidateRepository,
    SyncReportRepository,
    SyncScoreRepository,
    SyncSignalRepository,
    SyncWebhookRepository,
)
from biotech_ma_db.unit_of_work import UnitOfWork

__all__ = ["BlockingRepository", "RepositoryAttribute", "SyncUnitOfWork", "coroutine_methods"]

ProtocolT = TypeVar("ProtocolT")
ResultT = TypeVar("ResultT")


class BlockingRepository:
    """A repository of a unit of work whose coroutine methods are called without ``await``.

    The repository itself is looked up on the loop thread at every call (``uow.<name>``
    there), so a call after the unit of work has ended raises
    :class:`~biotech_ma_db.errors.UnitOfWorkError`, as it would in async code.

    Args:
        owner: The synchronous unit of work.
        name: The repository's attribute on :class:`~biotech_ma_db.UnitOfWork`.
        repository: The repository's class (which methods exist, their docstrings).
        methods: Its public coroutine methods (:func:`coroutine_methods`).
    """

    __slots__ = ("_calls", "_methods", "_name", "_owner", "_repository")

    def __init__(
        self,
        owner: SyncUnitOfWork,
        name: str,
        repository: type[object],
        methods: frozenset[str],
    ) -> None:
        self._owner = owner
        self._name = name
        self._repository = repository
        self._methods = methods
        self._calls: dict[str, Callable[..., object]] = {}

    def __repr__(self) -> str:
        return f"<blocking {self._repository.__name__} of {self._owner!r}>"

    def __dir__(self) -> list[str]:
        return sorted(self._methods)

    def __getattr__(self, method: str) -> Callable[..., object]:
        call = self._calls.get(method)
        if call is not None:
            return call
        if method not in self._methods:
            raise AttributeError(
                f"{self._repository.__name__}.{method} is not a coroutine method; the "
                "synchronous facade offers those (uow.run(...) runs any async code)"
            )
        owner, name = self._owner, self._name
        template = getattr(self._repository, method)

        def call_blocking(*args: object, **kwargs: object) -> object:
            async def on_loop() -> object:
                repository = getattr(owner.unit_of_work, name)
                bound: Callable[..., Awaitable[object]] = getattr(repository, method)
                return await bound(*args, **kwargs)

            return owner.loop.run(on_loop())

        # Name and docstring for help() in a notebook; not __wrapped__, whose signature
        # (with ``self``, returning a coroutine) would mislead.
        functools.update_wrapper(
            call_blocking, template, assigned=("__name__", "__qualname__", "__doc__"), updated=()
        )
        self._calls[method] = call_blocking
        return call_blocking


def coroutine_methods(repository: type[object]) -> frozenset[str]:
    """The public coroutine methods of ``repository`` (inherited ones included)."""
    return frozenset(
        name
        for name, value in inspect.getmembers(repository)
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    )


class RepositoryAttribute(Generic[ProtocolT]):
    """``SyncUnitOfWork.companies`` and friends: a :class:`BlockingRepository`, typed.

    Declared as ``companies: RepositoryAttribute[SyncCompanyRepository] =
    RepositoryAttribute(CompanyRepository)``: the annotation gives the static type
    (the generated Protocol), the argument the runtime class.
    """

    def __init__(self, repository: type[object]) -> None:
        self.repository = repository
        self.methods = coroutine_methods(repository)
        self.name = ""

    def __set_name__(self, owner: type[SyncUnitOfWork], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type[SyncUnitOfWork]) -> Self: ...

    @overload
    def __get__(self, instance: SyncUnitOfWork, owner: type[SyncUnitOfWork]) -> ProtocolT: ...

    def __get__(
        self, instance: SyncUnitOfWork | None, owner: type[SyncUnitOfWork]
    ) -> Self | ProtocolT:
        if instance is None:
            return self
        found = instance._proxies.get(self.name)
        if found is None:
            found = BlockingRepository(instance, self.name, self.repository, self.methods)
            instance._proxies[self.name] = found
        # The proxy answers every method of the Protocol (tests/integration/test_sync.py).
        return cast("ProtocolT", found)


class SyncUnitOfWork:
    """A :class:`~biotech_ma_db.UnitOfWork` used from synchronous code.

    Get one from :meth:`SyncDatabase.unit_of_work
    <biotech_ma_db.sync.SyncDatabase.unit_of_work>` (``with ... as uow:``).  Every
    repository of the unit of work is an attribute; call its methods without ``await``.
    ``commit()`` is explicit, as in async code; leaving the block without it rolls back.

    One thread at a time: the unit of work runs each call as a task on the loop
    thread, and a call from a second thread while one is in flight raises
    :class:`~biotech_ma_db.errors.UnitOfWorkError` (one unit of work per thread).

    Args:
        unit_of_work: The async unit of work, entered on ``loop``.
        loop: The loop thread that runs it.
    """

    companies: RepositoryAttribute[SyncCompanyRepository] = RepositoryAttribute(CompanyRepository)
    drug_candidates: RepositoryAttribute[SyncDrugCandidateRepository] = RepositoryAttribute(
        DrugCandidateRepository
    )
    signals: RepositoryAttribute[SyncSignalRepository] = RepositoryAttribute(SignalRepository)
    scores: RepositoryAttribute[SyncScoreRepository] = RepositoryAttribute(ScoreRepository)
    acquirer_matches: RepositoryAttribute[SyncAcquirerMatchRepository] = RepositoryAttribute(
        AcquirerMatchRepository
    )
    reports: RepositoryAttribute[SyncReportRepository] = RepositoryAttribute(ReportRepository)
    alerts: RepositoryAttribute[SyncAlertRepository] = RepositoryAttribute(AlertRepository)
    webhooks: RepositoryAttribute[SyncWebhookRepository] = RepositoryAttribute(WebhookRepository)
    clients: RepositoryAttribute[SyncClientRepository] = RepositoryAttribute(ClientRepository)
    api_keys: RepositoryAttribute[SyncApiKeyRepository] = RepositoryAttribute(ApiKeyRepository)
    audit_log: RepositoryAttribute[SyncAuditLogRepository] = RepositoryAttribute(AuditLogRepository)

    def __init__(self, unit_of_work: UnitOfWork, loop: LoopThread) -> None:
        self.unit_of_work = unit_of_work
        self.loop = loop
        self._proxies: dict[str, BlockingRepository] = {}

    def __repr__(self) -> str:
        return f"<Sync{self.unit_of_work!r}>"

    def commit(self) -> None:
        """Commit everything done so far (see :meth:`UnitOfWork.commit`)."""
        self.loop.run(self.unit_of_work.commit())

    def rollback(self) -> None:
        """Throw away everything not committed yet."""
        self.loop.run(self.unit_of_work.rollback())

    def run(self, fn: Callable[[UnitOfWork], Awaitable[ResultT]]) -> ResultT:
        """Run ``await fn(uow)`` on the loop thread with the async unit of work.

        For async code that exists already (a service function taking a unit of work)
        and for anything the repositories do not offer::

            count = uow.run(lambda u: u.session.scalar(select(func.count(Company.id))))
        """
        unit_of_work = self.unit_of_work

        async def on_loop() -> ResultT:
            return await fn(unit_of_work)

        return self.loop.run(on_loop())
