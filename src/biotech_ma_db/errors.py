"""The library's exceptions, and the one place where driver errors become them.

Every error raised by ``biotech_ma_db`` derives from :class:`DatabaseError`.  Children also
derive from the nearest builtin so callers can catch them generically::

    DatabaseError
    ├── NotFoundError                (LookupError)    no row with that key
    ├── InvalidInputError            (ValueError)     SQLSTATE 22xxx: a value PostgreSQL refused
    │   ├── ValidationError                           refused before any SQL was sent
    │   └── InvalidQueryError                         sort/filter/cursor outside the whitelist
    ├── IntegrityViolationError      (sqlalchemy IntegrityError)   SQLSTATE 23xxx
    │   ├── ConflictError                             23505 unique violation (DuplicateKeyError)
    │   ├── ForeignKeyViolationError                  23503
    │   ├── CheckViolationError                       23514
    │   └── NotNullViolationError                     23502
    ├── ConcurrencyError                              stale version, lost race
    │   ├── SerializationFailureError   (transient)   40001
    │   └── DeadlockDetectedError       (transient)   40P01
    ├── TransientDatabaseError                        re-running the whole transaction may work
    │   │                                             (0A000: cached statement invalidated by DDL)
    │   ├── SerializationFailureError, DeadlockDetectedError   (also ConcurrencyError)
    │   └── DatabaseUnavailableError (ConnectionError) 08xxx, 57P01-57P03, refused/reset sockets
    ├── QueryTimeoutError            (TimeoutError)   57014, or the client command timeout
    │   └── LockTimeoutError                          55P03
    ├── PoolExhaustedError           (TimeoutError)   no pooled connection within pool_timeout
    ├── CommitOutcomeUnknownError                     connection lost while COMMIT was in flight
    ├── PermissionDeniedError        (PermissionError) 42501, 25006 (read-only transaction)
    │   └── ReadOnlyViolationError                    a write on a read-only session, refused
    │                                                 before any SQL was sent
    ├── UnitOfWorkError              (RuntimeError)   a unit of work used outside its rules
    ├── MigrationError                                migrations could not run
    └── SchemaDriftError                              models and live schema disagree

The transient class (:func:`is_transient`) is what
:meth:`~biotech_ma_db.Database.run_in_transaction` re-runs: every
:class:`TransientDatabaseError`.  Timeouts are not in it (the time budget is spent), nor is
:class:`CommitOutcomeUnknownError` (re-running may apply the work twice) unless the unit
of work is idempotent.

Integrity errors also subclass :class:`sqlalchemy.exc.IntegrityError`, so code written
against the original system (``except IntegrityError``) keeps working.

Messages name SQLSTATEs, constraints, columns and fields, never bound parameter values or
passwords: PostgreSQL's ``DETAIL`` line (which quotes key values) is kept off the message.
The driver's own "invalid input for query argument $n: <value>" messages are rewritten
without the value in the whole exception chain, so a traceback does not print it either.
"""

from __future__ import annotations

import asyncio
import builtins
import re
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm.exc import StaleDataError

__all__ = [
    "CheckViolationError",
    "CommitOutcomeUnknownError",
    "ConcurrencyError",
    "ConflictError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DeadlockDetectedError",
    "DuplicateKeyError",
    "ForeignKeyViolationError",
    "IntegrityViolationError",
    "InvalidInputError",
    "InvalidQueryError",
    "LockTimeoutError",
    "MigrationError",
    "NotFoundError",
    "NotNullViolationError",
    "PermissionDeniedError",
    "PoolExhaustedError",
    "QueryTimeoutError",
    "ReadOnlyViolationError",
    "SchemaDriftError",
    "SerializationFailureError",
    "TransientDatabaseError",
    "UnitOfWorkError",
    "ValidationError",
    "is_commit_outcome_unknown",
    "is_transient",
    "translate_error",
]


class DatabaseError(Exception):
    """Root of every error raised by this library.

    Attributes:
        sqlstate: The PostgreSQL SQLSTATE behind the error, when there is one.
    """

    sqlstate: str | None = None

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        # Not super(): integrity errors also inherit SQLAlchemy's DBAPIError constructor.
        Exception.__init__(self, message)
        self.message = message
        if sqlstate is not None:
            self.sqlstate = sqlstate

    def __str__(self) -> str:
        return self.message


class NotFoundError(DatabaseError, LookupError):
    """No row matches the requested key."""

    def __init__(self, entity: str, key: object) -> None:
        super().__init__(f"{entity} {key!r} not found")
        self.entity = entity
        self.key = key


class InvalidInputError(DatabaseError, ValueError):
    """A value was refused (SQLSTATE class 22, e.g. NUL byte or over-long text)."""


class ValidationError(InvalidInputError):
    """A value was refused before any SQL was sent.

    Attributes:
        field: The field (column or argument) that holds the bad value.
        problem: What is wrong with it.
        row: Index of the offending row in a bulk call, else ``None``.
    """

    def __init__(self, field: str, problem: str, *, row: int | None = None) -> None:
        where = f" in row {row}" if row is not None else ""
        super().__init__(f"invalid {field}{where}: {problem}")
        self.field = field
        self.problem = problem
        self.row = row


class InvalidQueryError(InvalidInputError):
    """A sort key, filter field or cursor outside what the repository allows."""


class IntegrityViolationError(DatabaseError, sa_exc.IntegrityError):
    """A constraint refused the write (SQLSTATE class 23).

    Attributes:
        constraint: Name of the violated constraint, when PostgreSQL reported it.
        table: Table the constraint belongs to, when known.
        columns: Columns of the violated key, when known (never their values).
    """

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        constraint: str | None = None,
        table: str | None = None,
        columns: tuple[str, ...] = (),
        orig: BaseException | None = None,
    ) -> None:
        sa_exc.IntegrityError.__init__(self, None, None, orig or Exception(message), True)
        DatabaseError.__init__(self, message, sqlstate=sqlstate)
        self.constraint = constraint
        self.table = table
        self.columns = columns

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> str | tuple[Any, ...]:
        return (type(self), (self.message,), self.__dict__)


class ConflictError(IntegrityViolationError):
    """A unique constraint already holds that key (23505)."""


DuplicateKeyError = ConflictError


class ForeignKeyViolationError(IntegrityViolationError):
    """A referenced row does not exist, or is still referenced (23503)."""


class CheckViolationError(IntegrityViolationError):
    """A CHECK constraint refused the row (23514)."""


class NotNullViolationError(IntegrityViolationError):
    """A required column was NULL (23502)."""


class TransientDatabaseError(DatabaseError):
    """Re-running the whole transaction may succeed (see :func:`is_transient`).

    Raised as such when a schema change by another session invalidated a cached prepared
    statement (SQLSTATE 0A000): the driver has dropped its cache, the next run re-prepares.
    """


class ConcurrencyError(DatabaseError):
    """Another transaction won: a stale version, or a serialization conflict."""


class SerializationFailureError(ConcurrencyError, TransientDatabaseError):
    """PostgreSQL could not serialize the transaction (40001); retry the whole unit."""


class DeadlockDetectedError(ConcurrencyError, TransientDatabaseError):
    """PostgreSQL broke a deadlock by aborting this transaction (40P01)."""


class QueryTimeoutError(DatabaseError, builtins.TimeoutError):
    """A statement ran past statement_timeout (57014) or the client command timeout."""


class LockTimeoutError(QueryTimeoutError):
    """A lock was not granted within lock_timeout (55P03)."""


class PoolExhaustedError(DatabaseError, builtins.TimeoutError):
    """No pooled connection became free within pool_timeout."""


class DatabaseUnavailableError(TransientDatabaseError, ConnectionError):
    """The server cannot be reached, or went away (08xxx, 57P01-57P03, socket errors)."""


class CommitOutcomeUnknownError(DatabaseError):
    """The connection was lost while COMMIT was in flight: it may or may not have landed."""


class PermissionDeniedError(DatabaseError, PermissionError):
    """The role may not do this (42501), or the transaction is read-only (25006)."""


class ReadOnlyViolationError(PermissionDeniedError):
    """A read-only session or unit of work was asked to write; nothing was sent.

    Raised on the client, before any SQL, for a flush with new, changed or deleted objects,
    Core ``INSERT``/``UPDATE``/``DELETE`` and the repositories' COPY and batch writes.  Its
    ``sqlstate`` is ``25006`` (read-only transaction), the code the server would have used.
    """

    sqlstate = "25006"


class UnitOfWorkError(DatabaseError, RuntimeError):
    """A unit of work was used outside its rules.

    Raised when it is used before ``async with`` or after it, entered twice, or touched
    from a task other than the one that entered it (one session per task).
    """


class MigrationError(DatabaseError):
    """Migrations could not run (lock not acquired, pooler in the way, failed revision)."""


class SchemaDriftError(DatabaseError):
    """The live schema differs from the models.

    Attributes:
        differences: One human-readable line per difference.
    """

    def __init__(self, differences: list[str]) -> None:
        super().__init__(
            f"schema drift: {len(differences)} difference(s): " + "; ".join(differences)
        )
        self.differences = differences


_INTEGRITY_BY_SQLSTATE: dict[str, type[IntegrityViolationError]] = {
    "23505": ConflictError,
    "23503": ForeignKeyViolationError,
    "23514": CheckViolationError,
    "23502": NotNullViolationError,
}

_INTEGRITY_WORDING = {
    "23505": "duplicate key violates unique constraint",
    "23503": "foreign key constraint violated",
    "23514": "check constraint violated",
    "23502": "null value violates not-null constraint",
}

_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03"})
# asyncpg's exceptions for a prepared statement or type cache outdated by concurrent DDL.
_STALE_CACHE_NAMES = frozenset({"InvalidCachedStatementError", "OutdatedSchemaCacheError"})


def _find_sqlstate(exc: BaseException) -> tuple[str | None, BaseException | None]:
    """Walk the wrapped chain (SQLAlchemy → adapter → asyncpg) to the deepest server error.

    The deepest one is asyncpg's own exception, which carries ``constraint_name`` and
    ``table_name``; the adapter's copy above it has only the SQLSTATE.
    """
    found: tuple[str | None, BaseException | None] = (None, None)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str) and state and not isinstance(current, DatabaseError):
            found = (state, current)
        nxt = getattr(current, "orig", None)
        if not isinstance(nxt, BaseException):
            nxt = current.__cause__
        current = nxt
    return found


def _driver_exception_names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.update(cls.__name__ for cls in type(current).__mro__)
        nxt = getattr(current, "orig", None)
        current = nxt if isinstance(nxt, BaseException) else current.__cause__
    return names


_CONNECTION_LOSS_NAMES = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "ConnectionRejectionError",
        "PostgresConnectionError",
        "InternalClientError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "BrokenPipeError",
    }
)


_ARGUMENT_VALUE = re.compile(r"(invalid input for query argument \$\d+):.*")


def _hide_argument_values(exc: BaseException) -> None:
    """Drop bound values that asyncpg quotes in client-side encoding errors.

    asyncpg's ``DataError("invalid input for query argument $1: 'value' (...)")`` and the
    SQLAlchemy exceptions wrapping it carry the parameter in their message, which
    ``hide_parameters`` cannot reach; the messages are rewritten in place.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.args and isinstance(current.args[0], str):
            hidden = _ARGUMENT_VALUE.sub(r"\1 (value hidden)", current.args[0])
            if hidden != current.args[0]:
                current.args = (hidden, *current.args[1:])
        nxt = getattr(current, "orig", None)
        current = nxt if isinstance(nxt, BaseException) else current.__cause__


def translate_error(exc: BaseException) -> BaseException:
    """Map a SQLAlchemy/asyncpg exception to this library's typed error.

    Classification is keyed on SQLSTATE and the driver's exception class, never on message
    text.  Exceptions that are already ours, and ones this function does not recognise, are
    returned unchanged so callers can ``raise translated from exc`` uniformly.

    Args:
        exc: The exception as raised by SQLAlchemy or the driver.

    Returns:
        The typed error to raise instead (or ``exc`` itself).
    """
    if isinstance(exc, DatabaseError):
        return exc
    _hide_argument_values(exc)
    if isinstance(exc, sa_exc.TimeoutError):
        return PoolExhaustedError("no database connection became free within pool_timeout")
    if isinstance(exc, StaleDataError):
        return ConcurrencyError("the row was changed or deleted by another transaction")

    names = _driver_exception_names(exc)
    if names & _STALE_CACHE_NAMES:
        return TransientDatabaseError(
            "a cached statement was invalidated by a concurrent schema change "
            "[SQLSTATE 0A000]; re-run the transaction",
            sqlstate="0A000",
        )
    sqlstate, server_error = _find_sqlstate(exc)
    if sqlstate is not None:
        return _translate_sqlstate(sqlstate, server_error)

    if isinstance(exc, builtins.TimeoutError | asyncio.TimeoutError) or "TimeoutError" in names:
        return QueryTimeoutError("the database did not answer within the command timeout")
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailableError("the database connection was lost")
    if names & _CONNECTION_LOSS_NAMES or isinstance(exc, OSError):
        return DatabaseUnavailableError(f"the database connection failed ({type(exc).__name__})")
    if "InterfaceError" in names and "closed" in str(getattr(exc, "orig", exc)):
        return DatabaseUnavailableError("the database connection is closed")
    return exc


def _translate_sqlstate(sqlstate: str, server_error: BaseException | None) -> BaseException:
    constraint = getattr(server_error, "constraint_name", None)
    table = getattr(server_error, "table_name", None)
    column = getattr(server_error, "column_name", None)
    if sqlstate in _INTEGRITY_BY_SQLSTATE:
        columns = _key_columns(getattr(server_error, "detail", None))
        if column and not columns:
            columns = (column,)
        where = f" {constraint!s}" if constraint else ""
        on = f" on {table}" if table else ""
        cols = f" ({', '.join(columns)})" if columns else ""
        message = f"{_INTEGRITY_WORDING[sqlstate]}{where}{on}{cols} [SQLSTATE {sqlstate}]"
        return _INTEGRITY_BY_SQLSTATE[sqlstate](
            message,
            sqlstate=sqlstate,
            constraint=constraint,
            table=table,
            columns=columns,
        )
    kind = type(server_error).__name__ if server_error is not None else "error"
    reason = f"{kind} [SQLSTATE {sqlstate}]"
    if sqlstate.startswith("22"):
        return InvalidInputError(f"the database refused a value: {reason}", sqlstate=sqlstate)
    if sqlstate == "40001":
        return SerializationFailureError(f"serialization failure: {reason}", sqlstate=sqlstate)
    if sqlstate == "40P01":
        return DeadlockDetectedError(f"deadlock detected: {reason}", sqlstate=sqlstate)
    if sqlstate == "57014":
        return QueryTimeoutError(f"statement cancelled by timeout: {reason}", sqlstate=sqlstate)
    if sqlstate == "55P03":
        return LockTimeoutError(f"lock not granted in time: {reason}", sqlstate=sqlstate)
    if sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_STATES or sqlstate == "25P03":
        return DatabaseUnavailableError(f"database unavailable: {reason}", sqlstate=sqlstate)
    if sqlstate in {"42501", "25006"}:
        return PermissionDeniedError(f"permission denied: {reason}", sqlstate=sqlstate)
    return DatabaseError(f"database error: {reason}", sqlstate=sqlstate)


def _key_columns(detail: object) -> tuple[str, ...]:
    """Column names from a DETAIL such as ``Key (a, b)=(1, 2) already exists``.

    Only the part before ``=`` is read: the values are bound parameters and stay private.
    """
    if not isinstance(detail, str) or not detail.startswith("Key ("):
        return ()
    names, sep, _ = detail[len("Key (") :].partition(")=")
    if not sep:
        return ()
    return tuple(name.strip().strip('"') for name in names.split(","))


def is_transient(exc: BaseException) -> bool:
    """Whether re-running the whole transaction may succeed.

    True for :class:`TransientDatabaseError` and everything translated into one:
    serialization failures (40001), deadlocks (40P01), lost, reset or refused connections
    (08xxx, socket errors, asyncpg connection errors), server shutdown, crash and recovery
    (57P01-57P03), and cached statements invalidated by concurrent DDL.  False for
    timeouts, integrity errors, :class:`CommitOutcomeUnknownError` and anything else.
    """
    return isinstance(translate_error(exc), TransientDatabaseError)


def is_commit_outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed ``COMMIT`` may nevertheless have been applied by the server.

    That is the case when the connection died (or the client timed out) with the
    ``COMMIT`` in flight.  Not when the driver refused to send it because the connection
    was already closed, nor when the server answered with an error (e.g. 40001): then the
    transaction was certainly rolled back.
    """
    translated = translate_error(exc)
    if isinstance(translated, CommitOutcomeUnknownError):
        return True
    if isinstance(translated, QueryTimeoutError):
        return translated.sqlstate is None  # the client stopped waiting, not the server
    if not isinstance(translated, DatabaseUnavailableError):
        return False
    names = _driver_exception_names(exc)
    closed_before_sending = "InterfaceError" in names and not names & (
        _CONNECTION_LOSS_NAMES | {"OSError"}
    )
    return not closed_before_sending
