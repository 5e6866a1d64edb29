"""The synchronous facade: the same database, repositories and unit of work, without ``await``.

For scripts and notebooks::

    from biotech_ma_db.sync import SyncDatabase

    with SyncDatabase.from_url("postgresql+asyncpg://app@db/biotech_ma") as db:
        with db.unit_of_work(actor="notebook", reason="clean-up") as uow:
            company = uow.companies.get_by_ticker("ABCD")     # Company | None
            uow.signals.get_count_by_type(company_id=company.id)
            uow.commit()

How it runs.  :class:`SyncDatabase` owns one daemon thread with its own event loop
(:class:`~biotech_ma_db.sync._loop.LoopThread`, ``asyncio.run_coroutine_threadsafe``).
The async :class:`~biotech_ma_db.Database`, its pool and every unit of work live on that
loop; a call from the caller's thread schedules the coroutine there and waits for its
result.  The caller's own loop is never used, so it makes no difference whether one is
running (Jupyter, an ``async def`` function calling blocking code) or not.  Nothing of
the async code is written twice: each call is the async method itself.  anyio's blocking
portal does the same job, but on a non-daemon worker thread, so a notebook or script that
forgot ``close()`` would hang at exit; the loop thread here is twenty lines of asyncio.

How it is typed.  Python's type system cannot map "every coroutine method of ``T``" to
"the same method, blocking" (there are no mapped or higher-kinded types), so a generic
proxy with ``__getattr__`` would type every call as ``Any``.  The choices were:

- a sync twin of every repository, by hand: drifts, and is the duplication to avoid;
- ``uow.call(lambda u: u.companies.get_by_ticker("X"))``: typed, but not the API;
- one ``ParamSpec`` descriptor line per method and repository (some 150 lines by hand);
- **generated Protocols**, the way SQLAlchemy types ``AsyncSession``'s proxy methods
  (``tools/generate_proxy_methods.py``): chosen.

At run time there is one generic proxy (:class:`BlockingRepository`) that runs any public
coroutine method of the async repository on the loop thread.  For the type checker each
repository attribute of :class:`SyncUnitOfWork` is typed as a Protocol from
:mod:`biotech_ma_db.sync.repositories` (``SyncCompanyRepository``, ...), which
``tools/generate_sync_protocols.py`` writes from the repositories' source: the same
parameters and annotations, returning what the coroutine returns.  A unit test fails when
that module is out of date, and ``tests/typing/test_sync_types.py`` checks the inferred
types with ``mypy --strict``.

Objects.  Sessions never expire objects on commit, so what a call returns stays readable
in the caller's thread after the unit of work ends; relationships that were not loaded
raise (``lazy="raise"``) rather than load, as in async code.

``biotech_ma_db.frames`` builds DataFrames through the same facade.
"""

from biotech_ma_db.sync._database import SyncDatabase
from biotech_ma_db.sync._loop import LoopThread
from biotech_ma_db.sync._unit_of_work import BlockingRepository, RepositoryAttribute, SyncUnitOfWork
from biotech_ma_db.sync.repositories import (
    SyncAcquirerMatchRepository,
    SyncAlertRepository,
    SyncApiKeyRepository,
    SyncAuditLogRepository,
    SyncClientRepository,
    SyncCompanyRepository,
    SyncDrugCandidateRepository,
    SyncReadRepository,
    SyncReportRepository,
    SyncRepository,
    SyncScoreRepository,
    SyncSignalRepository,
    SyncWebhookRepository,
)

__all__ = [
    "BlockingRepository",
    "LoopThread",
    "RepositoryAttribute",
    "SyncAcquirerMatchRepository",
    "SyncAlertRepository",
    "SyncApiKeyRepository",
    "SyncAuditLogRepository",
    "SyncClientRepository",
    "SyncCompanyRepository",
    "SyncDatabase",
    "SyncDrugCandidateRepository",
    "SyncReadRepository",
    "SyncReportRepository",
    "SyncRepository",
    "SyncScoreRepository",
    "SyncSignalRepository",
    "SyncUnitOfWork",
    "SyncWebhookRepository",
]
