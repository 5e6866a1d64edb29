"""The enumerations of the schema, and how they are stored.

Every enumeration is a :class:`enum.StrEnum`, so a plain string such as ``"sec_filing"`` or
``"high"`` is accepted wherever a member is (``Severity.HIGH == "high"``), and values read
back from the database come out as members.

Storage is *checked text*, one way for all of them: a ``VARCHAR(32)`` column plus a
``CHECK (column IN (...))`` constraint named ``ck_<table>_<column>`` (see
:func:`checked_enum`).  Adding a value is then one ``DROP``/``ADD CONSTRAINT`` in a
migration, with none of the transaction restrictions of ``ALTER TYPE ... ADD VALUE``.
"""

from __future__ import annotations

import enum

from sqlalchemy import Enum

__all__ = [
    "ENUM_LENGTH",
    "AuditAction",
    "DeliveryStatus",
    "DevelopmentPhase",
    "ReportStatus",
    "Severity",
    "SignalType",
    "StorageBackend",
    "checked_enum",
    "enum_values",
]

ENUM_LENGTH = 32
"""Width of every enum column: room to add longer values without a type change."""


class SignalType(enum.StrEnum):
    """Kind of a market signal; the polymorphic discriminator of ``signals``."""

    SEC_FILING = "sec_filing"
    FDA_APPROVAL = "fda_approval"
    CLINICAL_TRIAL = "clinical_trial"
    INSIDER_TRADING = "insider_trading"
    PARTNERSHIP = "partnership"
    FINANCING = "financing"
    EXECUTIVE_CHANGE = "executive_change"
    PATENT = "patent"
    NEWS = "news"


class Severity(enum.StrEnum):
    """How strongly a signal matters, in increasing order."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the order low < medium < high < critical (0-based)."""
        return list(Severity).index(self)


class DevelopmentPhase(enum.StrEnum):
    """Stage of a drug candidate, from the lab to the market."""

    PRECLINICAL = "preclinical"
    PHASE_1 = "phase_1"
    PHASE_2 = "phase_2"
    PHASE_3 = "phase_3"
    NDA_BLA_SUBMITTED = "nda_bla_submitted"
    APPROVED = "approved"


class ReportStatus(enum.StrEnum):
    """Life cycle of a generated report."""

    PENDING = "pending"
    GENERATING = "generating"
    READY = "ready"
    DISTRIBUTED = "distributed"
    FAILED = "failed"


class StorageBackend(enum.StrEnum):
    """Where a report's file lives."""

    LOCAL = "local"
    S3 = "s3"


class DeliveryStatus(enum.StrEnum):
    """State of one webhook delivery; ``dead`` means retries are exhausted."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"


class AuditAction(enum.StrEnum):
    """What happened to a row, as recorded in ``audit_log``."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    SOFT_DELETE = "soft_delete"
    RESTORE = "restore"


def enum_values(enum_class: type[enum.StrEnum]) -> list[str]:
    """The stored strings of ``enum_class``, in declaration order."""
    return [member.value for member in enum_class]


def checked_enum(enum_class: type[enum.StrEnum], column: str) -> Enum:
    """The column type of an enum stored as checked text.

    Args:
        enum_class: The enumeration whose *values* (not names) are stored.
        column: Name of the column; names the CHECK constraint ``ck_<table>_<column>``.

    Returns:
        A non-native ``Enum`` that emits ``VARCHAR(32)`` and its CHECK constraint.  Unknown
        strings are passed through to the database, whose CHECK constraint refuses them
        (a typed :class:`~biotech_ma_db.errors.CheckViolationError`).
    """
    return Enum(
        enum_class,
        name=column,
        native_enum=False,
        create_constraint=True,
        length=ENUM_LENGTH,
        values_callable=enum_values,
        validate_strings=False,
    )
