"""DatabaseSettings: environment parsing, defaults, URL building and validation errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from biotech_ma_db.database import connect_args, engine_options, server_settings
from biotech_ma_db.settings import DatabaseSettings, SettingsError

_ENV_NAMES = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT",
    "DB_POOL_RECYCLE",
    "DB_POOL_PRE_PING",
    "DB_ECHO",
    "DB_SSL_MODE",
    "DB_PGBOUNCER",
    "ENVIRONMENT",
)

AWKWARD_PASSWORD = "p%@ss:w/rd"


@pytest.fixture(autouse=True, name="clean_env")
def fixture_clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts from an empty environment in a folder without a .env file."""
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


class TestDefaults:
    """Without any variable set, the original system's defaults apply."""

    def test_pool_defaults_match_the_original_system(self) -> None:
        settings = DatabaseSettings()
        assert (settings.pool_size, settings.max_overflow) == (20, 10)
        assert (settings.pool_timeout, settings.pool_recycle) == (30.0, 3600)
        assert settings.pool_pre_ping is True
        assert settings.echo is False
        assert settings.environment == "development"

    def test_url_is_built_from_postgres_variables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("POSTGRES_HOST", "db.internal")
        monkeypatch.setenv("POSTGRES_PORT", "6543")
        monkeypatch.setenv("POSTGRES_DB", "biotech")
        monkeypatch.setenv("POSTGRES_USER", "app")
        monkeypatch.setenv("POSTGRES_PASSWORD", "hunter2")
        url = DatabaseSettings().url()
        assert url.drivername == "postgresql+asyncpg"
        assert (url.host, url.port, url.database, url.username) == (
            "db.internal",
            6543,
            "biotech",
            "app",
        )
        assert url.password == "hunter2"


class TestEnvironmentParsing:
    """Every DB_* knob is read from its documented variable."""

    def test_db_knobs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DB_POOL_SIZE", "7")
        monkeypatch.setenv("DB_MAX_OVERFLOW", "3")
        monkeypatch.setenv("DB_POOL_TIMEOUT", "2.5")
        monkeypatch.setenv("DB_POOL_RECYCLE", "60")
        monkeypatch.setenv("DB_POOL_PRE_PING", "false")
        monkeypatch.setenv("DB_ECHO", "true")
        monkeypatch.setenv("DB_PGBOUNCER", "1")
        settings = DatabaseSettings()
        assert settings.pool_size == 7
        assert settings.max_overflow == 3
        assert settings.pool_timeout == 2.5
        assert settings.pool_recycle == 60
        assert settings.pool_pre_ping is False
        assert settings.echo is True
        assert settings.pgbouncer is True

    def test_database_url_wins_over_postgres_variables(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("POSTGRES_HOST", "ignored")
        monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@primary:5432/biotech")
        url = DatabaseSettings().url()
        assert url.host == "primary"
        assert url.drivername == "postgresql+asyncpg"

    def test_dotenv_file_is_read(self, tmp_path: Path) -> None:
        (tmp_path / ".env").write_text("POSTGRES_DB=from_dotenv\nDB_POOL_SIZE=4\n")
        settings = DatabaseSettings()
        assert settings.postgres_db == "from_dotenv"
        assert settings.pool_size == 4

    def test_keyword_arguments_use_short_names(self) -> None:
        assert DatabaseSettings(pool_size=3).pool_size == 3

    def test_awkward_password_round_trips(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("POSTGRES_PASSWORD", AWKWARD_PASSWORD)
        url = DatabaseSettings().url()
        assert url.password == AWKWARD_PASSWORD
        rendered = url.render_as_string(hide_password=False)
        assert make_url(rendered).password == AWKWARD_PASSWORD
        assert AWKWARD_PASSWORD not in repr(url)

    def test_replica_urls_are_split(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DB_READ_REPLICA_URLS", "postgresql://u:p@r1/db, postgresql://u:p@r2/db")
        assert [u.host for u in DatabaseSettings().replica_urls()] == ["r1", "r2"]

    def test_ssl_mode_in_url_query_is_understood(self) -> None:
        settings = DatabaseSettings.from_url("postgresql://u:p@h/db?sslmode=require")
        assert settings.effective_ssl_mode() == "require"
        assert "sslmode" not in settings.url().query


class TestValidationErrors:
    """Bad values fail with SettingsError naming the variable and never the secret."""

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("DB_POOL_SIZE", "-1"),
            ("DB_POOL_SIZE", "many"),
            ("DB_POOL_TIMEOUT", "0"),
            ("POSTGRES_PORT", "port"),
            ("ENVIRONMENT", "prod-ish"),
            ("DB_SSL_MODE", "sometimes"),
        ],
    )
    def test_bad_value_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(SettingsError, match=variable):
            DatabaseSettings()

    def test_settings_error_is_a_value_error(self) -> None:
        assert issubclass(SettingsError, ValueError)

    def test_malformed_url_does_not_echo_the_password(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", f"mysql://u:{AWKWARD_PASSWORD}@h/db")
        with pytest.raises(SettingsError, match="DATABASE_URL") as caught:
            DatabaseSettings().url()
        assert AWKWARD_PASSWORD not in str(caught.value)

    def test_invalid_field_error_does_not_echo_the_url(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{AWKWARD_PASSWORD}@h/db")
        monkeypatch.setenv("DB_POOL_SIZE", "lots")
        with pytest.raises(SettingsError) as caught:
            DatabaseSettings()
        assert AWKWARD_PASSWORD not in str(caught.value)
        assert caught.value.__cause__ is None

    def test_repr_and_dump_hide_passwords(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{AWKWARD_PASSWORD}@h/db")
        monkeypatch.setenv("POSTGRES_PASSWORD", AWKWARD_PASSWORD)
        settings = DatabaseSettings()
        for text in (repr(settings), str(settings.model_dump()), settings.model_dump_json()):
            assert AWKWARD_PASSWORD not in text
            assert "p%40ss" not in text


class TestProductionRules:
    """Production refuses an empty password and a remote host without verify-full TLS."""

    def test_empty_password_names_postgres_password(self) -> None:
        with pytest.raises(SettingsError, match="POSTGRES_PASSWORD"):
            DatabaseSettings(environment="production", postgres_host="localhost")

    def test_empty_password_in_url_names_database_url(self) -> None:
        with pytest.raises(SettingsError, match="DATABASE_URL"):
            DatabaseSettings(environment="production", database_url="postgresql://app@localhost/db")

    @pytest.mark.parametrize("mode", [None, "disable", "prefer", "require", "verify-ca"])
    def test_remote_host_needs_verify_full(self, mode: str | None) -> None:
        with pytest.raises(SettingsError, match="DB_SSL_MODE"):
            DatabaseSettings(
                environment="production",
                postgres_host="db.example.com",
                postgres_password="s3cret",
                ssl_mode=mode,
            )

    def test_remote_host_with_verify_full_is_accepted(self) -> None:
        settings = DatabaseSettings(
            environment="production",
            postgres_host="db.example.com",
            postgres_password="s3cret",
            ssl_mode="verify-full",
        )
        context = settings.ssl_context()
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname is True
        assert context.verify_mode == ssl.CERT_REQUIRED

    def test_local_socket_needs_no_tls(self) -> None:
        settings = DatabaseSettings(
            environment="production",
            database_url="postgresql://app:pw@/db?host=/run/postgresql",
        )
        assert settings.url().query["host"] == "/run/postgresql"


class TestEngineOptions:
    """Settings become the engine defaults of RELIABILITY.md §6."""

    def test_reliability_defaults(self) -> None:
        options = engine_options(DatabaseSettings())
        assert options["pool_pre_ping"] is True
        assert options["hide_parameters"] is True
        args = options["connect_args"]
        assert args["timeout"] == 5.0
        assert args["command_timeout"] == 60.0
        sent = args["server_settings"]
        assert sent["application_name"] == "biotech-ma-db"
        assert sent["client_connection_check_interval"] == "1000"
        assert {"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"} <= set(
            sent
        )
        assert "statement_cache_size" not in args

    def test_pgbouncer_preset_disables_prepared_statement_caches(self) -> None:
        args = connect_args(DatabaseSettings(pgbouncer=True))
        assert args["statement_cache_size"] == 0
        assert args["prepared_statement_cache_size"] == 0
        first, second = (
            args["prepared_statement_name_func"](),
            args["prepared_statement_name_func"](),
        )
        assert first != second
        assert set(server_settings(DatabaseSettings(pgbouncer=True))) == {"application_name"}

    def test_disabled_timeouts_are_not_sent(self) -> None:
        sent = server_settings(DatabaseSettings(statement_timeout_ms=None, lock_timeout_ms=None))
        assert "statement_timeout" not in sent
        assert "lock_timeout" not in sent
