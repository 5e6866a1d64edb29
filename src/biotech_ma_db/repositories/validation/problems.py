"""The signals the value checks raise, and the helpers their messages share.

A value check knows neither the field nor the row it checks: it raises :class:`Invalid`
with the problem alone, and :class:`~.rules.ModelRules` turns that into a
:class:`~biotech_ma_db.errors.ValidationError` naming both.  A column-at-a-time check
raises :class:`RowByRow` when it cannot settle a batch, which sends the batch through the
row-by-row checks.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BulkCheck", "Check", "Invalid", "RowByRow", "encodable", "show"]

Check = Callable[[object], object]
"""Returns the cleaned value or raises :class:`Invalid`."""

BulkCheck = Callable[[list[object]], list[object]]
"""Checks one column of many rows (no ``None``); the driver values, or :class:`RowByRow`."""


class Invalid(Exception):  # noqa: N818 — internal signal, turned into ValidationError
    """A value is refused; ``problem`` says why, without the field or row."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class RowByRow(Exception):  # noqa: N818 — internal signal, not an error
    """A column check could not settle a batch at once: check it row by row instead."""


def show(value: object) -> str:
    """A short, safe rendering of a refused value for the error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def encodable(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8 (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
