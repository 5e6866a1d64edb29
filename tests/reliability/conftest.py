"""Fixtures of the reliability suite: a crashable PostgreSQL, a fault proxy, leak checks.

One TCP PostgreSQL cluster (``fsync=on``, ``synchronous_commit=on``) serves the whole
session; every test gets its own database cloned from a migrated template, a fresh
:class:`~harness.FaultProxy` in front of it, and a ``make_db`` factory whose databases are
checked after the test: pool checked-out == 0 and no server backend left (both polled for
up to 2 s).  Each test reports one figure with the ``report`` fixture; the figures are
appended as JSON lines to ``$RELIABILITY_REPORT`` (default:
``tests/reliability/.last-report.jsonl``, truncated at the start of each run) and printed
at the end of the run.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from biotech_ma_db import Database, migrations

from .harness import (
    Admin,
    FaultProxy,
    FaultServer,
    LoopThread,
    MakeDb,
    PgBouncer,
    PgCluster,
    Report,
    orphan_backends,
    pgbouncer_binary,
    run_async,
    wait_pool_idle,
)

REPORT_ENV = "RELIABILITY_REPORT"
DEFAULT_REPORT = Path(__file__).with_name(".last-report.jsonl")
TEMPLATE = "rel_template"

_records: list[dict[str, Any]] = []
_outcomes: dict[str, tuple[str, float]] = {}
_report_started = False
_names = itertools.count(1)


# -- report ----------------------------------------------------------------------------------


def report_path() -> Path:
    return Path(os.environ.get(REPORT_ENV) or DEFAULT_REPORT)


def write_record(record: dict[str, Any]) -> None:
    """Append one JSON line (the file is truncated by the first write of a run)."""
    global _report_started  # noqa: PLW0603 — one report file per pytest run
    path = report_path()
    mode = "a" if _report_started else "w"
    _report_started = True
    with path.open(mode) as handle:
        handle.write(json.dumps(record, default=str, sort_keys=True) + "\n")
    _records.append(record)


@pytest.fixture(name="report")
def fixture_report(request: pytest.FixtureRequest) -> Report:
    """``report("T-NET-1", "5 backends killed, 0/20 failed", killed=5, failed=0)``."""

    def report(test: str, figure: str, **data: Any) -> None:
        write_record({"test": test, "figure": figure, "nodeid": request.node.nodeid, **data})

    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when != "teardown" and report.outcome != "passed"):
        _outcomes[report.nodeid] = (report.outcome, report.duration)
    elif report.when == "teardown" and report.outcome == "failed":
        duration = _outcomes.get(report.nodeid, ("passed", 0.0))[1]
        _outcomes[report.nodeid] = ("failed (teardown)", duration)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _records:
        return
    terminalreporter.section("reliability figures")
    total = 0.0
    for record in sorted(_records, key=lambda r: str(r["test"])):
        outcome, duration = _outcomes.get(record["nodeid"], ("?", 0.0))
        total += duration
        terminalreporter.write_line(
            f"{record['test']:<10} {record['figure']}  [{outcome}, {duration:.1f} s]"
        )
    terminalreporter.write_line(
        f"{len(_records)} figures, {total:.0f} s of reliability tests; JSON lines in "
        f"{report_path()}"
    )


# -- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="session", name="fault_server")
def fixture_fault_server() -> Iterator[FaultServer]:
    """A PostgreSQL on 127.0.0.1 with durable commits, and a migrated template database."""
    root = Path(tempfile.mkdtemp(prefix="bmadb-rel-"))
    root.chmod(0o755)
    cluster = PgCluster(
        root / "pg",
        settings={
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": "300",
            "deadlock_timeout": "1s",
            "shared_buffers": "64MB",
            "log_min_messages": "warning",
        },
    )
    try:
        cluster.init()
        cluster.start()
        admin = cluster.admin()
        run_async(lambda: admin.execute(f"CREATE DATABASE {TEMPLATE}"))
        migrations.upgrade(cluster.url(TEMPLATE))
        yield FaultServer(cluster, TEMPLATE)
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", name="proxy_runner")
def fixture_proxy_runner() -> Iterator[LoopThread]:
    runner = LoopThread()
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(name="admin")
def fixture_admin(fault_server: FaultServer) -> Admin:
    return fault_server.admin()


@pytest_asyncio.fixture(name="fault_db")
async def fixture_fault_db(fault_server: FaultServer) -> AsyncIterator[str]:
    """Name of a fresh database cloned from the template; no backend may outlive the test."""
    name = f"rel_{next(_names)}_{os.getpid()}"
    admin = fault_server.admin()
    if not fault_server.cluster.running():
        fault_server.cluster.start()
    await admin.wait_ready()
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {fault_server.template}")
    try:
        yield name
        left = await orphan_backends(admin, datname=name, within=2.0)
        assert not left, f"server backends outlived the test: {left}"
    finally:
        await admin.wait_ready()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(name="proxy")
def fixture_proxy(fault_server: FaultServer, proxy_runner: LoopThread) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of the session's server, in ``pass`` mode."""
    proxy = FaultProxy(fault_server.port, proxy_runner).start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest_asyncio.fixture(name="make_db")
async def fixture_make_db(
    fault_server: FaultServer, fault_db: str, proxy: FaultProxy
) -> AsyncIterator[MakeDb]:
    """Build ``Database`` objects on the test's database (through the proxy by default).

    After the test (proxy healed first): every pool must have 0 connections checked out
    and, once disposed, no server backend may remain (the leak detector of T-POOL-2).
    """
    made: list[Database] = []

    def make(*, via_proxy: bool = True, **overrides: Any) -> Database:
        port = proxy.port if via_proxy else fault_server.port
        options: dict[str, Any] = {
            "application_name": f"rel-{fault_db}-{len(made)}",
            "pool_size": 5,
            "max_overflow": 0,
            "pool_timeout": 5.0,
            **overrides,
        }
        db = Database.from_url(fault_server.cluster.url(fault_db, port=port), **options)
        made.append(db)
        return db

    try:
        yield make
    finally:
        proxy.set_mode("pass")
        leaks = await wait_pool_idle(made, within=2.0)
        for db in made:
            await db.dispose()
        orphans = await orphan_backends(
            fault_server.admin(), application_prefix=f"rel-{fault_db}-", within=2.0
        )
    assert not leaks, "; ".join(leaks)
    assert not orphans, f"server backends left after dispose: {orphans}"


# -- pgbouncer -------------------------------------------------------------------------------


@pytest.fixture(scope="session", name="pgbouncer")
def fixture_pgbouncer(fault_server: FaultServer) -> Iterator[PgBouncer]:
    """pgbouncer 1.18 in transaction mode (default_pool_size=2) in front of the server."""
    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    root = Path(tempfile.mkdtemp(prefix="bmadb-pgb-"))
    root.chmod(0o755)
    bouncer = PgBouncer(root, target_port=fault_server.port, pool_size=2)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(root, ignore_errors=True)
