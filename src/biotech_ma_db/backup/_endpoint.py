"""One database to connect to, both from Python (asyncpg) and from pg_dump/pg_restore (libpq).

The URL is read through :class:`~biotech_ma_db.settings.DatabaseSettings`, so TLS
(``DB_SSL_MODE``, ``DB_SSL_ROOT_CERT`` or ``sslmode`` in the URL) means the same for
both.  The client programs get the connection through ``PG*`` environment variables and
the password through a passfile that only the current user can read and that is deleted
afterwards: never on the command line, where ``ps`` would show it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db.settings import DatabaseSettings

__all__ = ["Endpoint"]

_CLIENT_ENV_DROPPED = ("LC_ALL",)


def _query_value(url: URL, key: str) -> str | None:
    value = url.query.get(key)
    if isinstance(value, tuple):
        return value[-1] if value else None
    return value


def _passfile_line(password: str) -> str:
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A database as the backup code reaches it.

    Attributes:
        given: The URL as given (its query may hold ``host``, ``port``, ``sslrootcert``).
        settings: Settings for that URL (TLS, connect timeout).
    """

    given: URL
    settings: DatabaseSettings

    @classmethod
    def parse(cls, url: str | URL) -> Endpoint:
        """An endpoint for ``url`` (any ``postgresql://`` URL).

        Raises:
            SettingsError: ``url`` is not a PostgreSQL URL.
        """
        settings = DatabaseSettings.from_url(url)
        given = make_url(url) if isinstance(url, str) else url
        return cls(given, settings)

    @property
    def database(self) -> str:
        """The database's name."""
        return self.given.database or self.given.username or "postgres"

    @property
    def label(self) -> str:
        """The URL for messages, password masked."""
        return self.given.render_as_string(hide_password=True)

    def with_database(self, name: str) -> Endpoint:
        """The same server and credentials, another database."""
        given = self.given.set(database=name)
        return Endpoint(given, DatabaseSettings.from_url(given))

    def engine(self, application: str) -> AsyncEngine:
        """A ``NullPool`` engine: no connection outlives its use, no timeout cuts a long scan.

        Parameters never appear in logs or errors.
        """
        args: dict[str, object] = {
            "timeout": self.settings.connect_timeout_s,
            "server_settings": {"application_name": application},
        }
        ssl_option = self.settings.ssl_context()
        if ssl_option is not None:
            args["ssl"] = ssl_option
        return create_async_engine(
            self.settings.url(), poolclass=NullPool, hide_parameters=True, connect_args=args
        )

    @contextmanager
    def client_environment(self, application: str) -> Iterator[dict[str, str]]:
        """The environment for a libpq client program that connects here.

        Inherited ``PG*`` variables are dropped (a stray ``PGSERVICE`` or ``PGOPTIONS``
        must not redirect a restore), and messages are in English so they can be parsed.
        The passfile exists only inside the block.
        """
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PG") and key not in _CLIENT_ENV_DROPPED
        }
        env.update(self._libpq_variables(application))
        password = self.given.password
        if not password:
            yield env
            return
        with tempfile.TemporaryDirectory(prefix="biotech-ma-db-") as folder:
            passfile = Path(folder) / "pgpass"
            descriptor = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write(_passfile_line(str(password)))
            env["PGPASSFILE"] = str(passfile)
            yield env

    def _libpq_variables(self, application: str) -> dict[str, str]:
        given = self.given
        values = {
            "PGHOST": given.host or _query_value(given, "host"),
            "PGPORT": str(given.port) if given.port else _query_value(given, "port"),
            "PGUSER": given.username,
            "PGDATABASE": self.database,
            "PGAPPNAME": application,
            "PGCONNECT_TIMEOUT": str(max(2, math.ceil(self.settings.connect_timeout_s))),
            "PGSSLMODE": self.settings.effective_ssl_mode(),
            "PGSSLROOTCERT": (
                str(self.settings.ssl_root_cert)
                if self.settings.ssl_root_cert
                else _query_value(given, "sslrootcert")
            ),
            "LC_MESSAGES": "C",
        }
        return {key: value for key, value in values.items() if value}
