"""Driver errors become typed errors keyed on SQLSTATE and constraint, without values."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from biotech_ma_db import (
    CheckViolationError,
    ConflictError,
    Database,
    ForeignKeyViolationError,
    InvalidInputError,
    NotNullViolationError,
    QueryTimeoutError,
)

SECRET_VALUE = "value-that-must-stay-private"

_SCHEMA = (
    "CREATE TABLE parents (id int PRIMARY KEY, code text CONSTRAINT uq_parents_code UNIQUE)",
    "CREATE TABLE children (id int PRIMARY KEY,"
    " parent_id int CONSTRAINT fk_children_parent REFERENCES parents (id),"
    " amount int CONSTRAINT ck_children_amount_positive CHECK (amount > 0),"
    " label text NOT NULL DEFAULT 'x')",
    "INSERT INTO parents VALUES (1, 'value-that-must-stay-private')",
)


@pytest.fixture(name="throwaway_db")
async def fixture_throwaway_db(fresh_database: Database) -> Database:
    async with fresh_database.session() as session:
        for statement in _SCHEMA:
            await session.execute(text(statement))
    return fresh_database


async def _fails(db: Database, statement: str, params: dict[str, object]) -> BaseException:
    with pytest.raises(Exception) as caught:  # noqa: PT011 — the type is asserted by callers
        async with db.session() as session:
            await session.execute(text(statement), params)
    return caught.value


class TestIntegrityErrors:
    """Each constraint kind maps to its own typed error naming the constraint."""

    async def test_unique_violation(self, throwaway_db: Database) -> None:
        error = await _fails(
            throwaway_db, "INSERT INTO parents VALUES (2, :code)", {"code": SECRET_VALUE}
        )
        assert isinstance(error, ConflictError)
        assert error.sqlstate == "23505"
        assert error.constraint == "uq_parents_code"
        assert error.table == "parents"
        assert error.columns == ("code",)
        assert "uq_parents_code" in str(error)
        assert SECRET_VALUE not in str(error)
        assert SECRET_VALUE not in repr(error)
        assert isinstance(error.__cause__, sa_exc.IntegrityError)

    async def test_foreign_key_violation(self, throwaway_db: Database) -> None:
        error = await _fails(
            throwaway_db,
            "INSERT INTO children (id, parent_id, amount) VALUES (1, :p, 1)",
            {"p": 99},
        )
        assert isinstance(error, ForeignKeyViolationError)
        assert (error.sqlstate, error.constraint) == ("23503", "fk_children_parent")

    async def test_check_violation(self, throwaway_db: Database) -> None:
        error = await _fails(
            throwaway_db,
            "INSERT INTO children (id, parent_id, amount) VALUES (1, 1, :a)",
            {"a": -5},
        )
        assert isinstance(error, CheckViolationError)
        assert (error.sqlstate, error.constraint) == ("23514", "ck_children_amount_positive")

    async def test_not_null_violation(self, throwaway_db: Database) -> None:
        error = await _fails(
            throwaway_db, "INSERT INTO children (id, amount, label) VALUES (1, 1, :l)", {"l": None}
        )
        assert isinstance(error, NotNullViolationError)
        assert error.sqlstate == "23502"
        assert error.columns == ("label",)

    async def test_still_catchable_as_sqlalchemy_integrity_error(
        self, throwaway_db: Database
    ) -> None:
        """Code written against the original system catches ``sqlalchemy.exc.IntegrityError``."""
        with pytest.raises(sa_exc.IntegrityError):
            async with throwaway_db.session() as session:
                await session.execute(text("INSERT INTO parents VALUES (1, 'dup-id')"))


class TestOtherErrors:
    """Data exceptions and timeouts also arrive typed, and the pool stays healthy."""

    async def test_nul_byte_is_invalid_input(self, throwaway_db: Database) -> None:
        error = await _fails(throwaway_db, "SELECT CAST(:v AS text)", {"v": "a\x00b"})
        assert isinstance(error, InvalidInputError)
        assert error.sqlstate is not None
        assert error.sqlstate.startswith("22")

    async def test_statement_timeout_is_query_timeout(self, migrated_database_url: str) -> None:
        async with Database.from_url(migrated_database_url, statement_timeout_ms=100) as db:
            with pytest.raises(QueryTimeoutError) as caught:
                async with db.session() as session:
                    await session.execute(text("SELECT pg_sleep(5)"))
            assert caught.value.sqlstate == "57014"
            assert (await db.health()).ok
            assert db.pool_status().checked_out == 0
