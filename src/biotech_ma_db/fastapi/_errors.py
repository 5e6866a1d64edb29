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
``PermissionDeniedError`` (row-level security)      403     the error's message
``PoolExhaustedError``, ``QueryTimeoutError``,      503     a fixed text; ``Retry-After``
``TransientDatabaseError`` (unavailable server,
serialization failure, deadlock)
``CommitOutcomeUnknownError``                       503     a fixed text, no ``Retry-After``
=================================================  ======  =============================

Bodies are ``{"detail": ..., "error": "<kind>"}``.  Client errors carry the library's
message, which names fields, constraints, columns and SQLSTATEs, never a stored value or a
secret (a conflict names the key's columns, not the key); a ``ValidationError`` may quote
the refused value, shortened, back to the client that sent it, as FastAPI's own 422 does.
Server-side trouble gets a fixed text (the details go to the log).  Any other
``DatabaseError`` (``UnitOfWorkError``, say: a bug) is left to the server's 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from biotech_ma_db.errors import (
    CheckViolationError,
    CommitOutcomeUnknownError,
    ConcurrencyError,
    ConflictError,
    DatabaseError,
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

__all__ = ["RETRYABLE_ERRORS", "STATUS_BY_ERROR", "error_response", "install_error_handlers"]

logger = logging.getLogger("biotech_ma_db.fastapi")

STATUS_BY_ERROR: Final[Mapping[type[DatabaseError], int]] = MappingProxyType(
    {
        NotFoundError: 404,
        InvalidInputError: 422,
        CheckViolationError: 422,
        NotNullViolationError: 422,
        ConflictError: 409,
        ForeignKeyViolationError: 409,
        ConcurrencyError: 409,
        PermissionDeniedError: 403,
        # Transient before ConcurrencyError in every MRO walk: listed by their own class.
        SerializationFailureError: 503,
        DeadlockDetectedError: 503,
        PoolExhaustedError: 503,
        QueryTimeoutError: 503,
        TransientDatabaseError: 503,
        CommitOutcomeUnknownError: 503,
    }
)
"""HTTP status of each handled error class (the nearest class in the MRO wins)."""

RETRYABLE_ERRORS: Final = (PoolExhaustedError, QueryTimeoutError, TransientDatabaseError)
"""Errors answered with ``Retry-After``: trying the same request again later may work."""

_SERVER_SIDE_DETAIL: Final = {
    True: "the database is busy or unavailable; retry later",
    False: "the connection was lost during the commit: whether it was applied is unknown",
}
_CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")


def error_response(exc: DatabaseError, *, retry_after: int = 1) -> JSONResponse:
    """The HTTP answer for one of the library's errors (a 500 for unmapped ones).

    Args:
        exc: The error.
        retry_after: Seconds to put in ``Retry-After`` on a retryable error.
    """
    status_code = _status_of(exc)
    body: dict[str, object] = {"error": _kind(exc)}
    headers: dict[str, str] = {}
    if status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        retryable = isinstance(exc, RETRYABLE_ERRORS)
        body["detail"] = _SERVER_SIDE_DETAIL[retryable]
        if retryable:
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
    """Answer the library's errors as :data:`STATUS_BY_ERROR` says, on every route of ``app``.

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

    for error in STATUS_BY_ERROR:
        app.add_exception_handler(error, handle)


def _status_of(exc: DatabaseError) -> int:
    for cls in type(exc).__mro__:
        if issubclass(cls, DatabaseError) and cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def _kind(exc: DatabaseError) -> str:
    """``ConflictError`` → ``"conflict"``, ``PoolExhaustedError`` → ``"pool_exhausted"``."""
    return _CAMEL_HUMP.sub("_", type(exc).__name__.removesuffix("Error")).lower()
