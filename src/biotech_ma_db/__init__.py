"""biotech-ma-db: the async PostgreSQL data-access layer of the biotech M&A predictor.

Start with :class:`Database` (engine, pool, sessions, health) and
:class:`DatabaseSettings` (environment configuration).  The original system's
module-level API (:func:`init_db`, :func:`get_db_session`, :func:`health_check`,
:func:`close_db`) is kept as a facade over one default ``Database``.
"""

from biotech_ma_db.compat import close_db, get_db_session, health_check, init_db
from biotech_ma_db.database import Database, HealthReport, PoolStatus
from biotech_ma_db.errors import (
    CheckViolationError,
    CommitOutcomeUnknownError,
    ConcurrencyError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    DeadlockDetectedError,
    DuplicateKeyError,
    ForeignKeyViolationError,
    IntegrityViolationError,
    InvalidInputError,
    InvalidQueryError,
    LockTimeoutError,
    MigrationError,
    NotFoundError,
    NotNullViolationError,
    PermissionDeniedError,
    PoolExhaustedError,
    QueryTimeoutError,
    SchemaDriftError,
    SerializationFailureError,
    ValidationError,
)
from biotech_ma_db.settings import DatabaseSettings, SettingsError

__version__ = "0.1.0"

__all__ = [
    "CheckViolationError",
    "CommitOutcomeUnknownError",
    "ConcurrencyError",
    "ConflictError",
    "Database",
    "DatabaseError",
    "DatabaseSettings",
    "DatabaseUnavailableError",
    "DeadlockDetectedError",
    "DuplicateKeyError",
    "ForeignKeyViolationError",
    "HealthReport",
    "IntegrityViolationError",
    "InvalidInputError",
    "InvalidQueryError",
    "LockTimeoutError",
    "MigrationError",
    "NotFoundError",
    "NotNullViolationError",
    "PermissionDeniedError",
    "PoolExhaustedError",
    "PoolStatus",
    "QueryTimeoutError",
    "SchemaDriftError",
    "SerializationFailureError",
    "SettingsError",
    "ValidationError",
    "close_db",
    "get_db_session",
    "health_check",
    "init_db",
]
