"""Replica settings and consistency tokens, without a database."""

from __future__ import annotations

import pytest

from biotech_ma_db import ConsistencyToken, DatabaseSettings, SettingsError, ValidationError
from biotech_ma_db.engine import PRIMARY_ONLY


class TestReplicaSettings:
    """``DB_READ_REPLICA_URLS`` and the routing knobs are checked when the settings are built."""

    def test_a_malformed_replica_url_names_the_variable_not_the_secret(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DB_READ_REPLICA_URLS", "postgresql://u:p@r1/db, not a url:hunter2@@")
        with pytest.raises(SettingsError, match="DB_READ_REPLICA_URLS") as caught:
            DatabaseSettings()
        assert "hunter2" not in str(caught.value)

    def test_a_replica_url_of_another_database_kind_is_refused(self) -> None:
        with pytest.raises(SettingsError, match="DB_READ_REPLICA_URLS"):
            DatabaseSettings(read_replica_urls="mysql://u:p@r1/db")

    @pytest.mark.parametrize(
        ("field", "variable", "value"),
        [
            ("max_replica_lag_s", "DB_MAX_REPLICA_LAG_S", -1.0),
            ("max_replica_lag_s", "DB_MAX_REPLICA_LAG_S", float("nan")),
            ("replica_wait_ms", "DB_REPLICA_WAIT_MS", -5),
            ("replica_retry_s", "DB_REPLICA_RETRY_S", -0.5),
        ],
    )
    def test_negative_knobs_are_refused(self, field: str, variable: str, value: float) -> None:
        with pytest.raises(SettingsError, match=variable):
            DatabaseSettings(**{field: value})

    def test_defaults(self) -> None:
        settings = DatabaseSettings()
        assert settings.replica_urls() == []
        assert settings.max_replica_lag_s is None
        assert settings.replica_wait_ms == 250
        assert settings.replica_retry_s == 5.0

    def test_production_needs_a_password_on_each_replica(self) -> None:
        with pytest.raises(SettingsError, match="DB_READ_REPLICA_URLS: production requires"):
            DatabaseSettings(
                environment="production",
                database_url="postgresql://app:pw@/db?host=/run/postgresql",
                read_replica_urls="postgresql://app@/db?host=/run/replica",
            )

    def test_production_needs_verify_full_for_a_remote_replica(self) -> None:
        with pytest.raises(SettingsError, match="DB_SSL_MODE"):
            DatabaseSettings(
                environment="production",
                database_url="postgresql://app:pw@/db?host=/run/postgresql",
                read_replica_urls="postgresql://app:pw@replica.example.com/db",
            )


class TestConsistencyToken:
    """A token is a WAL position that survives a trip through text."""

    def test_text_round_trip(self) -> None:
        token = ConsistencyToken.parse("16/B374D848")
        assert token.lsn == (0x16 << 32) | 0xB374D848
        assert str(token) == "16/B374D848"
        assert ConsistencyToken.parse(str(token)) == token

    def test_order_follows_the_wal(self) -> None:
        assert ConsistencyToken.parse("0/FFFFFFFF") < ConsistencyToken.parse("1/0")

    @pytest.mark.parametrize("text", ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0"])
    def test_bad_text_is_a_validation_error(self, text: str) -> None:
        with pytest.raises(ValidationError, match="consistency"):
            ConsistencyToken.parse(text)

    def test_primary_only(self) -> None:
        assert PRIMARY_ONLY.primary_only is True
        assert ConsistencyToken.parse("16/B374D848").primary_only is False
