"""The benchmark's own PostgreSQL: an embedded server in a temporary folder.

The server runs with durable settings (``fast=False``: fsync and synchronous commit on),
as production would.  When the machine has at least two CPUs the client is pinned to the
first and the server (postmaster and every backend it forks) to the others, so that the
two do not fight for one core; :class:`Placement` records what was done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from biotech_ma_db import embedded, migrations
from biotech_ma_db.testing import databases

DATABASE = "bench"

# Settings for a benchmark cluster: durable (fsync on), but room for a 5M-row ingest
# without a checkpoint storm, and no autovacuum running into the timed runs.
_SERVER_SETTINGS = {
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
}


@dataclass
class Placement:
    """Which CPUs the client and the server were pinned to."""

    mode: str = "unpinned"
    client_cpus: list[int] = field(default_factory=list)
    server_cpus: list[int] = field(default_factory=list)
    note: str = ""

    def describe(self) -> str:
        if self.mode == "unpinned":
            return f"unpinned ({self.note})" if self.note else "unpinned"
        return f"{self.mode} (client CPUs {self.client_cpus}, server CPUs {self.server_cpus})"


@dataclass
class BenchServer:
    """A running benchmark server and the URLs of its database."""

    folder: Path
    server: embedded.EmbeddedServer
    url: str
    placement: Placement

    @property
    def dsn(self) -> dict[str, object]:
        """``asyncpg.connect`` keyword arguments for the benchmark database."""
        parsed = make_url(self.url)
        return {
            "user": parsed.username,
            "database": parsed.database,
            "host": parsed.query["host"],
            "port": int(str(parsed.query["port"])),
        }

    def server_pids(self) -> list[int]:
        """The postmaster and its children (backends and background workers)."""
        pids = [self.server.pid]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.server.pid:
                pids.append(int(entry.name))
        return pids

    def pin_server(self) -> None:
        """Re-apply the server placement (to backends forked since the last call)."""
        if self.placement.mode != "split":
            return
        cpus = ",".join(str(c) for c in self.placement.server_cpus)
        for pid in self.server_pids():
            subprocess.run(  # noqa: S603 — fixed argv, our own server's pids
                ["taskset", "-a", "-p", "-c", cpus, str(pid)],  # noqa: S607
                check=False,
                capture_output=True,
            )

    def server_cpu_seconds(self) -> float:
        """User+system CPU time of the server processes so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.server_pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / ticks


def _placement(pin: bool) -> Placement:
    cpus = sorted(os.sched_getaffinity(0))
    if not pin:
        return Placement(note="--no-pin")
    if len(cpus) < 2:
        return Placement(note=f"only {len(cpus)} CPU")
    if shutil.which("taskset") is None:
        return Placement(note="taskset not found")
    return Placement(mode="split", client_cpus=cpus[:1], server_cpus=cpus[1:])


async def _admin(server: embedded.EmbeddedServer, *statements: str) -> None:
    parsed = make_url(server.url("postgres"))
    conn = await asyncpg.connect(
        user=parsed.username,
        database="postgres",
        host=parsed.query["host"],
        port=int(str(parsed.query["port"])),
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def bench_server(*, pin: bool = True, keep: bool = False) -> Iterator[BenchServer]:
    """Start a fresh embedded server, create and migrate the database, stop it at the end."""
    parent = Path(tempfile.mkdtemp(prefix="bmadb-bench-"))
    # As root the server runs as an unprivileged OS user, which must reach the folder.
    parent.chmod(0o755)
    folder = parent / "pgdata"
    started = time.perf_counter()
    server = embedded.start(folder, fast=False)
    try:
        settings = [f"ALTER SYSTEM SET {k} = '{v}'" for k, v in _SERVER_SETTINGS.items()]
        databases.run_sync(lambda: _admin(server, *settings, "SELECT pg_reload_conf()"))
        url = databases.create_database(server.url("postgres"), DATABASE)
        migrations.upgrade(url)
        placement = _placement(pin)
        bench = BenchServer(folder=folder, server=server, url=url, placement=placement)
        if placement.mode == "split":
            os.sched_setaffinity(0, placement.client_cpus)
            bench.pin_server()
        print(
            f"server: embedded PostgreSQL in {folder} (pid {server.pid}), ready in "
            f"{time.perf_counter() - started:.1f}s; CPU placement: {placement.describe()}"
        )
        yield bench
    finally:
        embedded.stop(folder)
        if not keep:
            shutil.rmtree(parent, ignore_errors=True)
