"""The library's typed errors as HTTP answers.

=================================================  ======  =============================
error (and its subclasses)                          status  body ``detail``
=================================================  ======  =============================
``NotFoundError``                                   404     "<entity> not found"
``InvalidInputError`` (``ValidationError``,         422     the error's message (+ field)
``InvalidQueryError``), ``CheckViolationError``,
``NotNullViolationError``
``ConflictError``, ``ForeignKeyViolationError``,    409     the error's message (+ columns)
``ConcurrencyError`` (a stale version)
``PermissionDeniedError`` (row-level security,     403     the error's message
a write in a read-only unit of work)
``PoolExhaustedError``, ``QueryTimeoutError``,      503     a fixed text; ``Retry-After``
``TransientDatabaseError`` (unavailable server,
serialization failure, deadlock)
``CommitOutcomeUnknownError``                       503     a fixed text, no ``Retry-After``
=================================================  ======  =============================

Bodies are ``{"detail": ..., "error": "<kind>"}``, the kind one of the closed set in
:data:`ERROR_ANSWERS` (``"conflict"``, ``"pool_exhausted"``, ...).  Client errors carry
the library's message, which names fields, constraints, columns and SQLSTATEs, never a
stored value or a secret (a conflict names the key's columns, not the key); a
``ValidationError`` may quote the refused value, shortened, back to the client that sent
it, as FastAPI's own 422 does.  Server-side trouble gets a fixed text (the details go to
the log).  Any other ``DatabaseError`` (``UnitOfWorkError``, say: a bug) is left to the
server's 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from biotech_ma_db.errors import (
    CheckViolationError,
    CommitOutcomeUnknownError,
    ConcurrencyError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    DeadlockDetectedError,
    ForeignKeyViolationError,
    IntegrityViolationError,
    InvalidInputError,
    NotFoundError,
    NotNullViolationError,
    PermissionDeniedError,
    PoolExhaustedError,
    QueryTimeoutError,
    SerializationFailureError,
    TransientDatabaseError,
    ValidationError,
)

__all__ = [
    "ERROR_ANSWERS",
    "RETRYABLE_ERRORS",
    "ErrorAnswer",
    "answer_for",
    "error_response",
    "install_error_handlers",
]

logger = logging.getLogger("biotech_ma_db.fastapi")


class ErrorAnswer(NamedTuple):
    """How one error class is answered: the HTTP status and the body's ``error`` kind."""

    status: int
    kind: str


ERROR_ANSWERS: Final[Mapping[type[DatabaseError], ErrorAnswer]] = MappingProxyType(
    {
        NotFoundError: ErrorAnswer(404, "not_found"),
        ValidationError: ErrorAnswer(422, "validation"),
        InvalidInputError: ErrorAnswer(422, "invalid_input"),
        CheckViolationError: ErrorAnswer(422, "check_violation"),
        NotNullViolationError: ErrorAnswer(422, "not_null_violation"),
        ConflictError: ErrorAnswer(409, "conflict"),
        ForeignKeyViolationError: ErrorAnswer(409, "foreign_key_violation"),
        ConcurrencyError: ErrorAnswer(409, "concurrency"),
        PermissionDeniedError: ErrorAnswer(403, "permission_denied"),
        # Also ConcurrencyErrors, but transient: listed by their own class to answer 503.
        SerializationFailureError: ErrorAnswer(503, "serialization_failure"),
        DeadlockDetectedError: ErrorAnswer(503, "deadlock"),
        PoolExhaustedError: ErrorAnswer(503, "pool_exhausted"),
        QueryTimeoutError: ErrorAnswer(503, "query_timeout"),
        DatabaseUnavailableError: ErrorAnswer(503, "database_unavailable"),
        TransientDatabaseError: ErrorAnswer(503, "transient"),
        CommitOutcomeUnknownError: ErrorAnswer(503, "commit_outcome_unknown"),
    }
)
"""The answer to each handled error class; a subclass gets its nearest listed ancestor's.

The ``error`` kinds form a closed set that clients may switch on: a new subclass in the
library (a finer timeout, say) keeps its parent's kind.
"""

_INTERNAL: Final = ErrorAnswer(500, "internal")

RETRYABLE_ERRORS: Final = (PoolExhaustedError, QueryTimeoutError, TransientDatabaseError)
"""Errors answered with ``Retry-After``: trying the same request again later may work."""

_SERVER_SIDE_DETAIL: Final = {
    "commit_outcome_unknown": "the connection was lost during the commit: whether it was "
    "applied is unknown",
    "internal": "internal error",
}
_RETRY_LATER: Final = "the database is busy or unavailable; retry later"


def error_response(exc: DatabaseError, *, retry_after: int = 1) -> JSONResponse:
    """The HTTP answer for one of the library's errors (a 500 for unmapped ones).

    Args:
        exc: The error.
        retry_after: Seconds to put in ``Retry-After`` on a retryable error.
    """
    status_code, kind = answer_for(exc)
    body: dict[str, object] = {"error": kind}
    headers: dict[str, str] = {}
    if status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        body["detail"] = _SERVER_SIDE_DETAIL.get(kind, _RETRY_LATER)
        if isinstance(exc, RETRYABLE_ERRORS):
            headers["Retry-After"] = str(retry_after)
    elif isinstance(exc, NotFoundError):
        body["detail"] = f"{exc.entity} not found"  # not the key: it may be anything
    else:
        body["detail"] = str(exc)
        if isinstance(exc, ValidationError):
            body["field"] = exc.field
        if isinstance(exc, IntegrityViolationError) and exc.columns:
            body["columns"] = list(exc.columns)
    return JSONResponse(body, status_code=status_code, headers=headers)


def install_error_handlers(app: FastAPI, *, retry_after: int = 1) -> None:
    """Answer the library's errors as :data:`ERROR_ANSWERS` says, on every route of ``app``.

    Args:
        app: The application.
        retry_after: Seconds to put in ``Retry-After`` on a 503 that may be retried.
    """

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, DatabaseError):  # pragma: no cover - registered for them only
            raise exc
        response = error_response(exc, retry_after=retry_after)
        if response.status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
            logger.warning(
                "%s %s answered %d: %s: %s",
                request.method,
                request.url.path,
                response.status_code,
                type(exc).__name__,
                exc,
            )
        return response

    for error in ERROR_ANSWERS:
        app.add_exception_handler(error, handle)


def answer_for(exc: DatabaseError) -> ErrorAnswer:
    """The :data:`ERROR_ANSWERS` entry of ``exc``'s nearest listed class (else a 500)."""
    for cls in type(exc).__mro__:
        if issubclass(cls, DatabaseError) and cls in ERROR_ANSWERS:
            return ERROR_ANSWERS[cls]
    return _INTERNAL
