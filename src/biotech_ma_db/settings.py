"""Connection and pool configuration, read from the environment and a ``.env`` file.

``DatabaseSettings()`` reads ``DATABASE_URL`` (wins when set) or the original system's
``POSTGRES_HOST``/``POSTGRES_PORT``/``POSTGRES_DB``/``POSTGRES_USER``/``POSTGRES_PASSWORD``,
plus the ``DB_*`` knobs below.  Keyword arguments use the short field names
(``DatabaseSettings(pool_size=5)``).  Nothing is read at import time.

Passwords are ``SecretStr`` and reach the driver only inside a ``sqlalchemy.URL`` built at
the last moment, whose ``repr`` masks them.  Validation errors are :class:`SettingsError`
(a ``ValueError``) and quote variable names, never values.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from pathlib import Path
from typing import Any, Literal, Self

import pydantic
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["DatabaseSettings", "Environment", "SettingsError", "SslMode", "parse_key_ring"]

Environment = Literal["development", "staging", "production"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

ASYNC_DRIVER = "postgresql+asyncpg"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_URL_SSL_KEYS = ("sslmode", "ssl", "sslrootcert")


class SettingsError(ValueError):
    """The configuration is invalid; the message names the variable, never its value."""


def _env(default: Any, name: str, field: str) -> Any:
    return Field(default, validation_alias=AliasChoices(name, field))


class DatabaseSettings(BaseSettings):
    """Everything needed to reach PostgreSQL and size the pool.

    Environment variable names are given in each field's alias (``DB_POOL_SIZE`` for
    ``pool_size``).  The production rules (a password is required, a remote host needs
    ``DB_SSL_MODE=verify-full``, and any explicit ``sslmode`` other than ``verify-full`` is
    refused) are enforced when the settings are built.  ``DB_API_KEY_PEPPER`` and
    ``DB_WEBHOOK_ENCRYPTION_KEYS`` are checked when first used
    (:class:`~biotech_ma_db.security.SecurityConfig`), so a service that never touches API
    keys or webhook secrets does not need them.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    database_url: SecretStr | None = _env(None, "DATABASE_URL", "database_url")
    migration_database_url: SecretStr | None = _env(
        None, "MIGRATION_DATABASE_URL", "migration_database_url"
    )
    postgres_host: str = _env("localhost", "POSTGRES_HOST", "postgres_host")
    postgres_port: int = _env(5432, "POSTGRES_PORT", "postgres_port")
    postgres_db: str = _env("biotech_ma", "POSTGRES_DB", "postgres_db")
    postgres_user: str = _env("postgres", "POSTGRES_USER", "postgres_user")
    postgres_password: SecretStr = _env(SecretStr(""), "POSTGRES_PASSWORD", "postgres_password")

    pool_size: int = _env(20, "DB_POOL_SIZE", "pool_size")
    max_overflow: int = _env(10, "DB_MAX_OVERFLOW", "max_overflow")
    pool_timeout: float = _env(30.0, "DB_POOL_TIMEOUT", "pool_timeout")
    pool_recycle: int = _env(3600, "DB_POOL_RECYCLE", "pool_recycle")
    pool_pre_ping: bool = _env(True, "DB_POOL_PRE_PING", "pool_pre_ping")
    echo: bool = _env(False, "DB_ECHO", "echo")

    connect_timeout_s: float = _env(5.0, "DB_CONNECT_TIMEOUT_S", "connect_timeout_s")
    command_timeout_s: float | None = _env(60.0, "DB_COMMAND_TIMEOUT_S", "command_timeout_s")
    statement_timeout_ms: int | None = _env(
        30000, "DB_STATEMENT_TIMEOUT_MS", "statement_timeout_ms"
    )
    lock_timeout_ms: int | None = _env(10000, "DB_LOCK_TIMEOUT_MS", "lock_timeout_ms")
    idle_in_transaction_timeout_ms: int | None = _env(
        60000, "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "idle_in_transaction_timeout_ms"
    )
    client_connection_check_interval_ms: int | None = _env(
        1000, "DB_CLIENT_CONNECTION_CHECK_INTERVAL_MS", "client_connection_check_interval_ms"
    )
    slow_query_ms: int | None = _env(1000, "DB_SLOW_QUERY_MS", "slow_query_ms")
    application_name: str = _env("biotech-ma-db", "DB_APPLICATION_NAME", "application_name")

    ssl_mode: SslMode | None = _env(None, "DB_SSL_MODE", "ssl_mode")
    ssl_root_cert: Path | None = _env(None, "DB_SSL_ROOT_CERT", "ssl_root_cert")
    read_replica_urls: SecretStr | None = _env(None, "DB_READ_REPLICA_URLS", "read_replica_urls")
    max_replica_lag_s: float | None = _env(None, "DB_MAX_REPLICA_LAG_S", "max_replica_lag_s")
    replica_wait_ms: int = _env(250, "DB_REPLICA_WAIT_MS", "replica_wait_ms")
    replica_retry_s: float = _env(5.0, "DB_REPLICA_RETRY_S", "replica_retry_s")
    pgbouncer: bool = _env(False, "DB_PGBOUNCER", "pgbouncer")
    migration_lock_wait_seconds: float = _env(
        60.0, "DB_MIGRATION_LOCK_WAIT_SECONDS", "migration_lock_wait_seconds"
    )
    environment: Environment = _env("development", "ENVIRONMENT", "environment")

    api_key_pepper: SecretStr | None = _env(None, "DB_API_KEY_PEPPER", "api_key_pepper")
    webhook_encryption_keys: SecretStr | None = _env(
        None, "DB_WEBHOOK_ENCRYPTION_KEYS", "webhook_encryption_keys"
    )
    webhook_encryption_key_version: int | None = _env(
        None, "DB_WEBHOOK_ENCRYPTION_KEY_VERSION", "webhook_encryption_key_version"
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except pydantic.ValidationError as exc:
            # pydantic quotes the raw input (a DSN with its password) in its message.
            problems = "; ".join(
                f"{_variable_name(err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"invalid database settings: {problems}") from None
        self._check_key_version()
        self.replica_urls()  # a malformed replica URL fails here, naming the variable
        self._check_production_rules()

    @classmethod
    def from_url(cls, url: str | URL, **overrides: Any) -> Self:
        """Settings for one explicit URL, ignoring ``DATABASE_URL``/``POSTGRES_*``."""
        text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        return cls(database_url=SecretStr(text), **overrides)

    @field_validator(
        "database_url",
        "migration_database_url",
        "read_replica_urls",
        "api_key_pepper",
        "webhook_encryption_keys",
    )
    @classmethod
    def _blank_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @field_validator("webhook_encryption_keys")
    @classmethod
    def _key_ring(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_key_ring(value.get_secret_value())
        return value

    @field_validator("pool_size", "max_overflow", "pool_recycle", "replica_wait_ms")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be >= 0")
        return value

    @field_validator("pool_timeout", "connect_timeout_s", "migration_lock_wait_seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be > 0")
        return value

    @field_validator("max_replica_lag_s", "replica_retry_s")
    @classmethod
    def _not_negative_seconds(cls, value: float | None) -> float | None:
        if value is not None and not value >= 0:  # also refuses NaN
            raise ValueError("must be >= 0")
        return value

    def url(self) -> URL:
        """The application's asyncpg URL (password masked in its ``repr``)."""
        if self.database_url is not None:
            return _parse_url(self.database_url, "DATABASE_URL")
        return URL.create(
            ASYNC_DRIVER,
            username=self.postgres_user,
            password=self.postgres_password.get_secret_value() or None,
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.postgres_db,
        )

    def migration_url(self) -> URL:
        """The URL migrations run with: ``MIGRATION_DATABASE_URL``, else :meth:`url`."""
        if self.migration_database_url is not None:
            return _parse_url(self.migration_database_url, "MIGRATION_DATABASE_URL")
        return self.url()

    def replica_urls(self) -> list[URL]:
        """Read replicas from the comma-separated ``DB_READ_REPLICA_URLS``.

        Replicas are reached with the primary's TLS settings (``DB_SSL_MODE``,
        ``DB_SSL_ROOT_CERT``); an ``sslmode`` in a replica URL is ignored.
        """
        if self.read_replica_urls is None:
            return []
        parts = self.read_replica_urls.get_secret_value().split(",")
        return [
            _parse_url(SecretStr(p.strip()), "DB_READ_REPLICA_URLS") for p in parts if p.strip()
        ]

    def effective_ssl_mode(self) -> SslMode | None:
        """``DB_SSL_MODE``, else an ``sslmode``/``ssl`` given in the URL's query string."""
        if self.ssl_mode is not None:
            return self.ssl_mode
        query = self._raw_url_query()
        mode = query.get("sslmode") or query.get("ssl")
        if mode in {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}:
            return mode  # type: ignore[return-value]  # narrowed by the membership test above
        return None

    def ssl_context(self) -> ssl.SSLContext | str | bool | None:
        """What asyncpg's ``ssl`` argument should be for the configured mode.

        ``verify-full`` and ``verify-ca`` build a verifying context (TLS 1.2 or newer) from
        ``DB_SSL_ROOT_CERT`` (else the system's CA store); with a context asyncpg
        *requires* TLS, so a server without it is refused.  ``require`` encrypts without
        verifying; ``allow``/``prefer`` are passed through by name (TLS optional, the
        libpq meaning); ``disable`` turns TLS off.  ``None`` leaves asyncpg's own default
        (``prefer`` over TCP).
        """
        mode = self.effective_ssl_mode()
        if mode is None:
            return None
        if mode == "disable":
            return False
        if mode in {"verify-full", "verify-ca"}:
            root = self.ssl_root_cert or self._url_root_cert()
            context = ssl.create_default_context(cafile=str(root) if root else None)
            context.check_hostname = mode == "verify-full"
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            return context
        if mode in {"allow", "prefer"}:
            # libpq semantics (asyncpg implements them): TLS is optional and unverified,
            # which is why production refuses these modes.
            return mode  # asyncpg takes the mode name
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def _raw_url_query(self) -> dict[str, str]:
        if self.database_url is None:
            return {}
        query = make_url(self.database_url.get_secret_value()).query
        return {k: v if isinstance(v, str) else v[-1] for k, v in query.items()}

    def _url_root_cert(self) -> Path | None:
        root = self._raw_url_query().get("sslrootcert")
        return Path(root) if root else None

    def _check_key_version(self) -> None:
        version = self.webhook_encryption_key_version
        if version is None:
            return
        ring = self.webhook_encryption_keys
        if ring is None or version not in parse_key_ring(ring.get_secret_value()):
            raise SettingsError(
                "DB_WEBHOOK_ENCRYPTION_KEY_VERSION: no key with that version in "
                "DB_WEBHOOK_ENCRYPTION_KEYS"
            )

    def _check_production_rules(self) -> None:
        if self.environment != "production":
            return
        primary = "DATABASE_URL" if self.database_url is not None else "POSTGRES_PASSWORD"
        targets = [(primary, self.url())]
        targets += [("DB_READ_REPLICA_URLS", url) for url in self.replica_urls()]
        for variable, url in targets:
            if not url.password:
                raise SettingsError(f"{variable}: production requires a database password")
        mode = self.effective_ssl_mode()
        if mode is not None and mode != "verify-full":
            raise SettingsError(
                f"DB_SSL_MODE: production refuses sslmode={mode}; use verify-full "
                "(or leave it unset for a local socket)"
            )
        for _, url in targets:
            host = url.host or ""
            remote = bool(host) and host not in _LOCAL_HOSTS and not host.startswith("/")
            if remote and mode != "verify-full":  # unset, as any other mode was refused above
                raise SettingsError(
                    "DB_SSL_MODE: production connections to a remote host require "
                    "sslmode=verify-full (got unset)"
                )


def parse_key_ring(text: str) -> dict[int, bytes]:
    """Parse ``DB_WEBHOOK_ENCRYPTION_KEYS``: ``version:key`` pairs, comma-separated.

    Each ``key`` is 32 bytes in URL-safe base64; versions are distinct integers >= 1.

    Raises:
        ValueError: A malformed pair (the message never quotes a key).
    """
    ring: dict[int, bytes] = {}
    for number, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        version_text, sep, encoded = part.partition(":")
        try:
            version = int(version_text)
            key = base64.urlsafe_b64decode(encoded.strip().encode("ascii"))
        except (ValueError, binascii.Error, UnicodeError):
            version, key = 0, b""
        if not sep or version < 1 or len(key) != 32:
            raise ValueError(
                f"entry {number + 1} must be 'version:key' with version >= 1 and a 32-byte "
                "URL-safe base64 key"
            )
        if version in ring:
            raise ValueError(f"key version {version} is given twice")
        ring[version] = key
    if not ring:
        raise ValueError("no 'version:key' entry")
    return ring


def _variable_name(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "settings"
    info = DatabaseSettings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return field.upper()


def _parse_url(secret: SecretStr, variable: str) -> URL:
    try:
        url = make_url(secret.get_secret_value())
    except (ArgumentError, ValueError):
        raise SettingsError(f"{variable}: not a valid database URL") from None
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        raise SettingsError(f"{variable}: only postgresql:// URLs are supported")
    query = {k: v for k, v in url.query.items() if k not in _URL_SSL_KEYS}
    return url.set(drivername=ASYNC_DRIVER, query=query)
