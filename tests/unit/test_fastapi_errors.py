"""The FastAPI extra without a database: the missing-extra message and the error table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from biotech_ma_db import (
    CheckViolationError,
    CommitOutcomeUnknownError,
    ConcurrencyError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    DeadlockDetectedError,
    ForeignKeyViolationError,
    InvalidInputError,
    InvalidQueryError,
    LockTimeoutError,
    NotFoundError,
    NotNullViolationError,
    PermissionDeniedError,
    PoolExhaustedError,
    QueryTimeoutError,
    SerializationFailureError,
    UnitOfWorkError,
    ValidationError,
)
from biotech_ma_db.fastapi import error_response

WITHOUT_FASTAPI = """
import sys
sys.modules["fastapi"] = None  # what an environment without the extra looks like
import biotech_ma_db            # the core package does not need it
try:
    import biotech_ma_db.fastapi
except ImportError as exc:
    print(exc)
else:
    print("imported")
"""


class TestMissingExtra:
    """Without FastAPI, importing the integration names the extra to install."""

    def test_import_error_names_the_extra(self) -> None:
        result = subprocess.run(
            [sys.executable, "-c", WITHOUT_FASTAPI],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "pip install 'biotech-ma-db[fastapi]'" in result.stdout, result.stdout


def _conflict() -> ConflictError:
    return ConflictError(
        "duplicate key violates unique constraint ix_companies_ticker on companies (ticker) "
        "[SQLSTATE 23505]",
        sqlstate="23505",
        constraint="ix_companies_ticker",
        table="companies",
        columns=("ticker",),
    )


class FinerTimeoutError(QueryTimeoutError):
    """A subclass the error table does not list: it is answered as its parent."""


CASES: list[tuple[DatabaseError, int, str, bool]] = [
    (NotFoundError("Company", "bmap_live_secret"), 404, "not_found", False),
    (ValidationError("ticker", "expected text"), 422, "validation", False),
    (InvalidQueryError("unknown filter operator 'x'"), 422, "invalid_input", False),
    (
        InvalidInputError("the database refused a value [SQLSTATE 22001]"),
        422,
        "invalid_input",
        False,
    ),
    (CheckViolationError("check constraint violated"), 422, "check_violation", False),
    (NotNullViolationError("null value violates not-null"), 422, "not_null_violation", False),
    (_conflict(), 409, "conflict", False),
    (ForeignKeyViolationError("foreign key violated"), 409, "foreign_key_violation", False),
    (ConcurrencyError("the row was changed by another transaction"), 409, "concurrency", False),
    (PermissionDeniedError("permission denied [SQLSTATE 42501]"), 403, "permission_denied", False),
    (PoolExhaustedError("no connection within pool_timeout"), 503, "pool_exhausted", True),
    (QueryTimeoutError("statement cancelled [SQLSTATE 57014]"), 503, "query_timeout", True),
    (LockTimeoutError("lock not granted [SQLSTATE 55P03]"), 503, "query_timeout", True),
    (FinerTimeoutError("a finer timeout"), 503, "query_timeout", True),
    (DatabaseUnavailableError("unavailable [SQLSTATE 57P01]"), 503, "database_unavailable", True),
    (SerializationFailureError("[SQLSTATE 40001]"), 503, "serialization_failure", True),
    (DeadlockDetectedError("deadlock detected [SQLSTATE 40P01]"), 503, "deadlock", True),
    (CommitOutcomeUnknownError("lost during COMMIT"), 503, "commit_outcome_unknown", False),
    (UnitOfWorkError("the unit of work belongs to another task"), 500, "internal", False),
]


class TestErrorResponse:
    """Each error class gets its status; retryable ones say when to come back."""

    @pytest.mark.parametrize(
        ("error", "status", "kind", "retry"), CASES, ids=[type(c[0]).__name__ for c in CASES]
    )
    def test_status_kind_and_retry_after(
        self, error: DatabaseError, status: int, kind: str, retry: bool
    ) -> None:
        response = error_response(error, retry_after=7)
        assert response.status_code == status
        assert response.headers.get("Retry-After") == ("7" if retry else None)
        body = json.loads(bytes(response.body))
        assert body["error"] == kind
        assert isinstance(body["detail"], str)
        if status >= 500:
            assert str(error) not in body["detail"]  # server trouble: no internals

    def test_not_found_does_not_echo_the_key(self) -> None:
        body = json.loads(bytes(error_response(CASES[0][0]).body))
        assert body == {"error": "not_found", "detail": "Company not found"}

    def test_conflict_names_columns_not_values(self) -> None:
        body = json.loads(bytes(error_response(_conflict()).body))
        assert body["error"] == "conflict"
        assert body["columns"] == ["ticker"]
        assert "ix_companies_ticker" in body["detail"]

    def test_validation_names_the_field(self) -> None:
        body = json.loads(bytes(error_response(ValidationError("name", "too long")).body))
        assert body == {"error": "validation", "detail": "invalid name: too long", "field": "name"}
