"""The simple CHECK constraints of a table, parsed from their text.

Understood: ``col >= n``, ``col > n`` (and ``<=``, ``<``), ``col BETWEEN a AND b``,
``col ~ 'regex'`` (``~*`` too), ``col <@ ARRAY[...]::text[]`` and the two-column
``a <= b`` / ``a <> b``.  Anything more elaborate is left to PostgreSQL, whose refusal
becomes a typed :class:`~biotech_ma_db.errors.CheckViolationError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from sqlalchemy import CheckConstraint, TextClause

from biotech_ma_db.errors import ValidationError
from biotech_ma_db.repositories.validation.problems import Invalid, show

__all__ = ["Limits", "PairRule", "parse_checks"]

_NUMBER = r"-?\d+(?:\.\d+)?"
_BOUND_RE: Final = re.compile(rf"^(\w+) (>=|>|<=|<) ({_NUMBER})$")
_BETWEEN_RE: Final = re.compile(rf"^(\w+) BETWEEN ({_NUMBER}) AND ({_NUMBER})$", re.IGNORECASE)
_REGEX_RE: Final = re.compile(r"^(\w+) (~\*?) '((?:[^']|'')*)'$")
_SUBSET_RE: Final = re.compile(r"^(\w+) <@ ARRAY\[(.*)\]::text\[\]$", re.IGNORECASE)
_PAIR_RE: Final = re.compile(r"^(\w+) (<=|<>) (\w+)$")


@dataclass(slots=True)
class Limits:
    """What the CHECK constraints (and the column's kind) allow in one column."""

    minimum: Decimal | None = None
    min_inclusive: bool = True
    maximum: Decimal | None = None
    max_inclusive: bool = True
    pattern: re.Pattern[str] | None = None
    allowed_items: frozenset[str] | None = None

    def check_number(self, value: Decimal | int, shown: object) -> None:
        """Raise :class:`Invalid` unless ``value`` is within the bounds."""
        if self.minimum is not None and (
            value < self.minimum or (not self.min_inclusive and value == self.minimum)
        ):
            op = ">=" if self.min_inclusive else ">"
            raise Invalid(f"must be {op} {self.minimum}, got {show(shown)}")
        if self.maximum is not None and (
            value > self.maximum or (not self.max_inclusive and value == self.maximum)
        ):
            op = "<=" if self.max_inclusive else "<"
            raise Invalid(f"must be {op} {self.maximum}, got {show(shown)}")


@dataclass(frozen=True, slots=True)
class PairRule:
    """A two-column CHECK: ``left <= right`` or ``left <> right``."""

    left: str
    op: str
    right: str

    def check(self, values: Mapping[str, object]) -> None:
        """Raise :class:`~biotech_ma_db.errors.ValidationError` if ``values`` break it."""
        left, right = values.get(self.left), values.get(self.right)
        if left is None or right is None:
            return
        if self.op == "<>" and left == right:
            raise ValidationError(self.right, f"must differ from {self.left}")
        if self.op == "<=" and left > right:  # type: ignore[operator]  # same column kinds
            raise ValidationError(self.left, f"must not be greater than {self.right}")


def parse_checks(constraints: Iterable[object]) -> tuple[dict[str, Limits], list[PairRule]]:
    """The limits per column name, and the two-column rules, of a table's constraints."""
    limits: dict[str, Limits] = {}
    pairs: list[PairRule] = []
    for constraint in constraints:
        if not isinstance(constraint, CheckConstraint):
            continue
        sqltext = constraint.sqltext
        if not isinstance(sqltext, TextClause):
            continue  # enum constraints come from the column type instead
        text = " ".join(sqltext.text.split())
        if match := _BETWEEN_RE.match(text):
            entry = limits.setdefault(match[1], Limits())
            entry.minimum, entry.maximum = Decimal(match[2]), Decimal(match[3])
        elif match := _BOUND_RE.match(text):
            entry = limits.setdefault(match[1], Limits())
            bound, op = Decimal(match[3]), match[2]
            if op.startswith(">"):
                entry.minimum, entry.min_inclusive = bound, op == ">="
            else:
                entry.maximum, entry.max_inclusive = bound, op == "<="
        elif match := _REGEX_RE.match(text):
            flags = re.IGNORECASE if match[2] == "~*" else 0
            limits.setdefault(match[1], Limits()).pattern = re.compile(
                match[3].replace("''", "'"), flags
            )
        elif match := _SUBSET_RE.match(text):
            items = frozenset(part.strip().strip("'") for part in match[2].split(","))
            limits.setdefault(match[1], Limits()).allowed_items = items
        elif match := _PAIR_RE.match(text):
            pairs.append(PairRule(match[1], match[2], match[3]))
    return limits, pairs
