"""Provider chain selection: URL, then Docker, then the embedded wheel."""

from __future__ import annotations

import pytest

from biotech_ma_db.testing.providers import URL_ENV, choose_provider


def _no_docker() -> bool:
    return False


def _docker() -> bool:
    return True


class TestChooseProvider:
    """The first available link of the chain wins unless one is forced."""

    def test_url_variable_wins(self) -> None:
        env = {URL_ENV: "postgresql://u@h/db"}
        assert choose_provider(environ=env, docker_check=_docker) == "url"

    def test_docker_when_an_engine_answers(self) -> None:
        assert choose_provider(environ={}, docker_check=_docker) == "docker"

    def test_embedded_otherwise(self) -> None:
        assert choose_provider(environ={}, docker_check=_no_docker) == "embedded"

    def test_forced_provider_skips_the_chain(self) -> None:
        env = {URL_ENV: "postgresql://u@h/db"}
        assert choose_provider("embedded", environ=env, docker_check=_docker) == "embedded"

    def test_forced_by_environment(self) -> None:
        env = {"BIOTECH_MA_TEST_PG_PROVIDER": "embedded"}
        assert choose_provider(environ=env, docker_check=_docker) == "embedded"

    def test_forced_url_without_url_is_an_error(self) -> None:
        with pytest.raises(ValueError, match=URL_ENV):
            choose_provider("url", environ={}, docker_check=_no_docker)

    def test_unknown_provider_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="--pg-provider"):
            choose_provider("podman", environ={}, docker_check=_no_docker)
