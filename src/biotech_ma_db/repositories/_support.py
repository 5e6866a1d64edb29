"""What every repository shares: the type names, the id check, the error translation.

:func:`translating_errors` is the one place where repositories (and the unit of work)
turn SQLAlchemy and driver exceptions into the library's typed errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeAlias, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.orm import QueryableAttribute

from biotech_ma_db.errors import DatabaseError, ValidationError, translate_error
from biotech_ma_db.models.base import Base

__all__ = ["Criterion", "Loadable", "ModelT", "check_id", "is_deleted", "translating_errors"]

ModelT = TypeVar("ModelT", bound=Base)

Criterion: TypeAlias = ColumnElement[bool]
"""A SQL boolean expression built by code, e.g. ``Company.market_cap_usd > 10**9``."""

Loadable: TypeAlias = str | QueryableAttribute[Any]
"""A relationship to load: its name or the attribute (``Company.signals``)."""

_MIN_BIGINT: Final = -(2**63)
_MAX_BIGINT: Final = 2**63 - 1


@contextmanager
def translating_errors() -> Iterator[None]:
    """Re-raise SQLAlchemy and driver exceptions as the library's typed errors.

    The one place where repositories (and the unit of work) translate: the original
    exception stays attached as ``__cause__``; errors that are already typed, and ones
    :func:`~biotech_ma_db.errors.translate_error` does not recognise, pass unchanged.
    """
    try:
        yield
    except DatabaseError:
        raise
    except Exception as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc


def check_id(value: object, field: str = "id") -> int:
    """A row id: a 64-bit ``int`` (not a ``bool``); raises ``ValidationError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"expected an integer id, got {type(value).__name__}")
    if not _MIN_BIGINT <= value <= _MAX_BIGINT:
        raise ValidationError(field, "is outside the 64-bit integer range")
    return value


def is_deleted(row: Base) -> bool:
    """Whether ``row`` is soft-deleted (a model without ``deleted_at`` never is)."""
    return getattr(row, "deleted_at", None) is not None
