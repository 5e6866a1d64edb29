"""Reviewable SQL, and the safe-migration rules checked on every revision of it.

The SQL is ``alembic upgrade head --sql`` (offline, no database), produced here in-process
and by the ``alembic`` command line alike; ``.ci/run`` writes it to
``build/migrations.sql`` for reviewers.  The rules are in :mod:`.safety`; each one is
shown catching a bad example from ``bad_examples/``, and passing the safe forms of the
same changes (``bad_examples/good_patterns.py``, also run against a real database) and
the shape of a partitioning migration (``bad_examples/good_partitioning.py``).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db import migrations

from . import safety
from .helpers import clean_env, run_alembic_stdout, scalars

EXAMPLES = Path(__file__).resolve().parent / "bad_examples"
HEAD = migrations.heads()[0]
REVISIONS = [revision for revision, _ in migrations.history()]


@pytest.fixture(scope="module", name="project_sql")
def fixture_project_sql() -> str:
    """The offline SQL of the project's own migrations, base to head."""
    return safety.offline_sql()


def _with_example(root: Path, name: str) -> Path:
    """A copy of the project's scripts with ``bad_examples/<name>.py`` on top of the head."""
    target = root / "migrations"
    shutil.copytree(
        migrations.migrations_path(), target, ignore=shutil.ignore_patterns("__pycache__")
    )
    source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
    assert 'down_revision = "__head__"' in source
    (target / "versions" / f"{name}.py").write_text(
        source.replace('down_revision = "__head__"', f"down_revision = {HEAD!r}"),
        encoding="utf-8",
    )
    return target


def _violations(scripts: Path) -> list[safety.Violation]:
    sql = safety.offline_sql(scripts)
    return safety.check(safety.parse_script(sql), safety.revision_sources(scripts))


class TestReviewableSql:
    """``alembic upgrade head --sql`` works without a database and covers every revision."""

    def test_every_revision_is_in_the_sql(self, project_sql: str) -> None:
        parsed = safety.parse_script(project_sql)
        assert [revision.revision for revision in parsed] == REVISIONS
        assert all(revision.statements for revision in parsed)

    def test_sql_starts_with_lock_timeout(self, project_sql: str) -> None:
        first = safety.split_statements(project_sql)[0].strip()
        assert first == f"SET lock_timeout = '{migrations.DEFAULT_LOCK_TIMEOUT_MS}ms'"

    async def test_command_line_gives_the_same_sql(self, project_sql: str) -> None:
        # No DATABASE_URL, no POSTGRES_*: offline mode must not need them.
        returncode, stdout, stderr = await run_alembic_stdout(
            clean_env(), "upgrade", "head", "--sql"
        )
        assert returncode == 0, stderr
        assert stdout == project_sql

    def test_splitting_respects_quotes_and_dollar_bodies(self) -> None:
        sql = "SELECT 'a;b';\nDO $$ BEGIN PERFORM 1; END $$;\n-- c; d\nSELECT $t$;$t$;"
        assert [piece.strip() for piece in safety.split_statements(sql)] == [
            "SELECT 'a;b'",
            "DO $$ BEGIN PERFORM 1; END $$",
            "-- c; d\nSELECT $t$;$t$",
        ]


@pytest.mark.parametrize("revision", REVISIONS)
def test_revision_follows_the_rules(project_sql: str, revision: str) -> None:
    """Every revision in ``migrations/versions`` (later ones included) passes every rule."""
    parsed = [r for r in safety.parse_script(project_sql) if r.revision == revision]
    violations = safety.check(parsed, safety.revision_sources())
    assert violations == [], "\n".join(map(str, violations))


BAD_EXAMPLES = [
    ("bad_index_not_concurrent", "index-concurrently", "CREATE INDEX ix_companies_name"),
    (
        "bad_index_in_transaction",
        "index-concurrently",
        "CREATE INDEX CONCURRENTLY ix_companies_name",
    ),
    ("bad_not_null_without_default", "not-null", "ADD COLUMN region TEXT NOT NULL"),
    ("bad_set_not_null_without_backfill", "not-null", "ALTER COLUMN exchange SET NOT NULL"),
    ("bad_type_change", "table-rewrite", "ALTER COLUMN size_bytes TYPE NUMERIC(30)"),
    ("bad_lock_timeout", "lock-timeout", "ADD COLUMN region TEXT"),
]


class TestRulesCatchBadExamples:
    """Each rule names the revision and the statement of the example that breaks it."""

    @pytest.mark.parametrize(("name", "rule", "statement"), BAD_EXAMPLES)
    def test_rule_catches_example(
        self, tmp_path: Path, name: str, rule: str, statement: str
    ) -> None:
        violations = _violations(_with_example(tmp_path, name))
        assert [v.rule for v in violations] == [rule], "\n".join(map(str, violations))
        message = str(violations[0])
        assert message.startswith(f"revision {name}: [{rule}]"), message
        assert statement in message, message

    def test_every_rule_has_an_example(self) -> None:
        assert {rule for _, rule, _ in BAD_EXAMPLES} == set(safety.RULES)

    @pytest.mark.parametrize("name", ["good_patterns", "good_partitioning"])
    def test_safe_forms_pass(self, tmp_path: Path, name: str) -> None:
        violations = _violations(_with_example(tmp_path, name))
        assert violations == [], "\n".join(map(str, violations))


class TestGoodPatternsRun:
    """The safe forms the rules ask for work on a real database holding rows."""

    async def test_upgrade_and_downgrade_with_data(
        self, empty_database_url: str, tmp_path: Path
    ) -> None:
        url = empty_database_url
        await asyncio.to_thread(migrations.upgrade, url)
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO companies (ticker, name) "
                        "SELECT 'T' || n, 'Company ' || n FROM generate_series(1, 2500) AS n"
                    )
                )
        finally:
            await engine.dispose()
        config = migrations.alembic_config(url)
        config.set_main_option("script_location", str(_with_example(tmp_path, "good_patterns")))
        await asyncio.to_thread(command.upgrade, config, "head")
        assert await scalars(url, "SELECT count(*) FROM companies WHERE sector = 'biotech'") == [
            2500
        ]
        assert await scalars(
            url,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_companies_sector'::regclass",
        ) == [True]
        await asyncio.to_thread(command.downgrade, config, HEAD)
        assert await asyncio.to_thread(migrations.check_schema, url) == []
