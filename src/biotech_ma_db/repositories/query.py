"""Sorting, filtering and pagination from outside input, through whitelists only.

A repository declares which fields may be sorted and filtered on::

    sortable = {"name": Company.name, "market_cap_usd": Company.market_cap_usd}

and every string from outside is looked up in that mapping; anything else raises
:class:`~biotech_ma_db.errors.InvalidQueryError` before any SQL is built (never
``getattr(model, user_input)``, never ``text(user_input)``).

Sort specs: ``"market_cap_usd"`` or ``"+market_cap_usd"`` (ascending),
``"-market_cap_usd"`` (descending), ``("name", "asc")``, or a list of those.  NULLs sort
last in both directions, and ``id`` always breaks ties, so every order is total.

Cursors (:class:`Page`) are opaque: URL-safe base64 of a small JSON document holding the
sort keys, the sort values of the boundary row and its ``id``, plus a short checksum so an
edited cursor is refused rather than silently moving the page.  The checksum is not a
secret: a forged cursor still reaches SQL only as bound parameters.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Generic, Literal, TypeAlias, TypeGuard, TypeVar

from sqlalchemy import ColumnElement, and_, false, or_
from sqlalchemy.orm import InstrumentedAttribute

from biotech_ma_db.errors import InvalidQueryError, ValidationError
from biotech_ma_db.models.base import Base

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ColumnAttribute",
    "OffsetPage",
    "Page",
    "SortKey",
    "SortSpec",
    "check_limit",
    "check_offset",
]

ItemT = TypeVar("ItemT", bound=Base)

ColumnAttribute: TypeAlias = InstrumentedAttribute[Any]
"""A mapped column attribute such as ``Company.name`` (column types vary, hence ``Any``)."""

Direction: TypeAlias = Literal["asc", "desc"]
SortKey: TypeAlias = str | tuple[str, str]
SortSpec: TypeAlias = SortKey | Sequence[SortKey]

MAX_LIMIT: Final = 500
"""The largest page any repository returns in one call."""

DEFAULT_LIMIT: Final = 100
"""The page size when the caller gives none."""

_MAX_CURSOR_LENGTH: Final = 4096
_MAX_FILTER_LIST: Final = 1000
_CURSOR_VERSION: Final = 1
_CHECKSUM_KEY: Final = b"biotech-ma-db/cursor/v1"
_FILTER_OPERATORS: Final = ("eq", "ne", "lt", "lte", "gt", "gte", "in")


def check_limit(limit: object, *, maximum: int = MAX_LIMIT) -> int:
    """A page size between 1 and ``maximum``.

    Raises:
        InvalidQueryError: When ``limit`` is not an integer in that range.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidQueryError(f"limit must be an integer, got {type(limit).__name__}")
    if not 1 <= limit <= maximum:
        raise InvalidQueryError(f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def check_offset(offset: object) -> int:
    """A non-negative row offset.

    Raises:
        InvalidQueryError: When ``offset`` is not a non-negative integer.
    """
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidQueryError("offset must be a non-negative integer")
    return offset


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One resolved sort key: a whitelisted name, its column and direction."""

    name: str
    column: ColumnAttribute
    descending: bool
    nullable: bool

    @property
    def token(self) -> str:
        """The key as written in a sort spec (``-name`` when descending)."""
        return f"-{self.name}" if self.descending else self.name

    def clause(self, *, reverse: bool = False) -> ColumnElement[Any]:
        """ORDER BY term; NULLs last in the forward order (first when reversed)."""
        descending = self.descending != reverse
        term = self.column.desc() if descending else self.column.asc()
        if not self.nullable:
            return term
        return term.nulls_first() if reverse else term.nulls_last()


def resolve_order(
    spec: SortSpec | None,
    sortable: Mapping[str, ColumnAttribute],
    id_column: ColumnAttribute,
) -> list[OrderKey]:
    """Turn a sort spec into whitelisted keys, always ending with ``id`` as tie-breaker.

    Raises:
        InvalidQueryError: For a name outside ``sortable``, a bad direction or shape.
    """
    keys: list[OrderKey] = []
    for name, direction in _split_spec(spec):
        column = sortable.get(name)
        if column is None:
            raise InvalidQueryError(
                f"cannot sort by {name[:64]!r}; allowed: {', '.join(sorted(sortable))}"
            )
        if any(key.name == name for key in keys):
            raise InvalidQueryError(f"sort key {name!r} given twice")
        keys.append(OrderKey(name, column, direction == "desc", _nullable(column)))
    if not any(key.column is id_column for key in keys):
        descending = keys[-1].descending if keys else False
        keys.append(OrderKey("id", id_column, descending, nullable=False))
    return keys


def _split_spec(spec: SortSpec | None) -> list[tuple[str, Direction]]:
    if spec is None:
        return []
    if isinstance(spec, str):
        return [_parse_token(spec)]
    if _is_pair(spec):
        return [(spec[0], _direction(spec[1]))]
    if not isinstance(spec, Sequence):
        raise InvalidQueryError(f"a sort spec must be text or a list, got {type(spec).__name__}")
    parts: list[tuple[str, Direction]] = []
    for item in spec:
        if isinstance(item, str):
            parts.append(_parse_token(item))
        elif _is_pair(item):
            parts.append((item[0], _direction(item[1])))
        else:
            raise InvalidQueryError("each sort key must be 'name', '-name' or (name, direction)")
    if len(parts) > 8:
        raise InvalidQueryError("at most 8 sort keys")
    return parts


def _is_pair(value: object) -> TypeGuard[tuple[str, str]]:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(part, str) for part in value)
        and value[1].lower() in {"asc", "desc"}
    )


def _parse_token(token: str) -> tuple[str, Direction]:
    if token.startswith("-"):
        return token[1:], "desc"
    if token.startswith("+"):
        return token[1:], "asc"
    return token, "asc"


def _direction(value: str) -> Direction:
    lowered = value.lower()
    if lowered == "asc":
        return "asc"
    if lowered == "desc":
        return "desc"
    raise InvalidQueryError("sort direction must be 'asc' or 'desc'")


def _nullable(column: ColumnAttribute) -> bool:
    expression = column.expression
    return bool(getattr(expression, "nullable", True))


def resolve_filters(
    filters: Mapping[str, object] | None,
    filterable: Mapping[str, ColumnAttribute],
    check_value: Callable[[str, object], object],
) -> list[ColumnElement[bool]]:
    """Whitelisted filters as SQL criteria.

    Keys are ``field`` (equality; ``None`` means IS NULL) or ``field__op`` with ``op`` one
    of ``eq``, ``ne``, ``lt``, ``lte``, ``gt``, ``gte`` and ``in`` (a list).  Values are
    checked like column values and always bound as parameters.

    Args:
        filters: The caller's filters.
        filterable: The repository's whitelist.
        check_value: ``(field, value) -> cleaned value`` (the model's validation rules).

    Raises:
        InvalidQueryError: For a field outside the whitelist or an unknown operator.
        ValidationError: For a value of the wrong kind.
    """
    criteria: list[ColumnElement[bool]] = []
    for key, value in (filters or {}).items():
        if not isinstance(key, str):
            raise InvalidQueryError("filter names must be text")
        name, _, op = key.partition("__")
        column = filterable.get(name)
        if column is None:
            raise InvalidQueryError(
                f"cannot filter on {name[:64]!r}; allowed: {', '.join(sorted(filterable))}"
            )
        op = op or "eq"
        if op not in _FILTER_OPERATORS:
            raise InvalidQueryError(f"unknown filter operator {op[:16]!r}")
        field = column.key
        if op == "in":
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise ValidationError(key, "expected a list for __in")
            if len(value) > _MAX_FILTER_LIST:
                raise ValidationError(key, f"at most {_MAX_FILTER_LIST} values")
            cleaned = [check_value(field, item) for item in value]
            criteria.append(column.in_(cleaned))
            continue
        operand = check_value(field, value)
        if operand is None:
            if op not in {"eq", "ne"}:
                raise ValidationError(key, "None only works with equality")
            criteria.append(column.is_(None) if op == "eq" else column.is_not(None))
            continue
        criteria.append(_compare(column, op, operand))
    return criteria


def _compare(column: ColumnAttribute, op: str, operand: object) -> ColumnElement[bool]:
    if op == "eq":
        return column == operand
    if op == "ne":
        return column != operand
    if op == "lt":
        return column < operand
    if op == "lte":
        return column <= operand
    if op == "gt":
        return column > operand
    return column >= operand


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """One page of a keyset-paginated listing.

    Attributes:
        items: The rows of this page, in the requested order.
        next_cursor: Pass as ``after=`` for the following page; ``None`` at the end.
        prev_cursor: Pass as ``before=`` for the preceding page; ``None`` at the start.
    """

    items: list[ItemT]
    next_cursor: str | None
    prev_cursor: str | None

    @property
    def has_next(self) -> bool:
        """Whether rows follow this page."""
        return self.next_cursor is not None

    @property
    def has_prev(self) -> bool:
        """Whether rows precede this page."""
        return self.prev_cursor is not None


@dataclass(frozen=True, slots=True)
class OffsetPage(Generic[ItemT]):
    """One page of an offset-paginated listing, with the total number of matches."""

    items: list[ItemT]
    total: int
    limit: int
    offset: int

    @property
    def has_next(self) -> bool:
        """Whether rows follow this page."""
        return self.offset + len(self.items) < self.total


def encode_cursor(keys: Sequence[OrderKey], row: Base) -> str:
    """The opaque cursor of ``row``'s position in the order ``keys``."""
    values = [_to_json(getattr(row, key.column.key)) for key in keys]
    document = {"v": _CURSOR_VERSION, "s": [key.token for key in keys], "k": values}
    payload = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    raw = _checksum(payload) + payload
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: object, keys: Sequence[OrderKey]) -> list[object]:
    """The sort values inside ``cursor``, typed like their columns.

    Raises:
        InvalidQueryError: For anything that is not a cursor of this order, unchanged.
    """
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise InvalidQueryError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise InvalidQueryError("invalid cursor") from None
    digest, payload = raw[:8], raw[8:]
    if len(digest) != 8 or _checksum(payload) != digest:
        raise InvalidQueryError("invalid cursor")
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise InvalidQueryError("invalid cursor") from None
    if (
        not isinstance(document, dict)
        or document.get("v") != _CURSOR_VERSION
        or document.get("s") != [key.token for key in keys]
        or not isinstance(document.get("k"), list)
        or len(document["k"]) != len(keys)
    ):
        raise InvalidQueryError("the cursor does not belong to this listing and order")
    return [_from_json(value, key) for value, key in zip(document["k"], keys, strict=True)]


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=8, key=_CHECKSUM_KEY).digest()


def _to_json(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _from_json(value: object, key: OrderKey) -> object:
    if value is None:
        if not key.nullable:
            raise InvalidQueryError("invalid cursor")
        return None
    python_type = _python_type(key.column)
    try:
        if python_type is Decimal and isinstance(value, str):
            number = Decimal(value)
            if number.is_finite():
                return number
        elif python_type is dt.datetime and isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment
        elif python_type is dt.date and isinstance(value, str):
            return dt.date.fromisoformat(value)
        elif python_type in {int, bool} and type(value) is python_type:
            return value
        elif isinstance(python_type, type) and issubclass(python_type, enum.Enum):
            return python_type(value)
        elif python_type is str and isinstance(value, str):
            return value
    except (InvalidOperation, ValueError, TypeError):
        pass
    raise InvalidQueryError("invalid cursor")


def _python_type(column: ColumnAttribute) -> object:
    try:
        return column.expression.type.python_type
    except NotImplementedError:  # pragma: no cover - every sortable column has one
        return object


def keyset_condition(
    keys: Sequence[OrderKey], values: Sequence[object], *, before: bool
) -> ColumnElement[bool]:
    """Rows strictly after (or before) the position ``values`` in the order ``keys``.

    Expanded as ``k1 > v1 OR (k1 = v1 AND (k2 > v2 OR ...))`` so mixed directions and
    NULLs (which sort last) are handled; the trailing ``id`` makes it strict.
    """
    condition: ColumnElement[bool] = false()
    for key, value in zip(reversed(keys), reversed(values), strict=True):
        beyond = _beyond(key, value, before=before)
        same = key.column.is_(None) if value is None else key.column == value
        condition = or_(beyond, and_(same, condition))
    return condition


def _beyond(key: OrderKey, value: object, *, before: bool) -> ColumnElement[bool]:
    column = key.column
    if value is None:
        # NULLs come last: nothing is after a NULL, every non-NULL is before it.
        return column.is_not(None) if before else false()
    forward = column < value if key.descending else column > value
    backward = column > value if key.descending else column < value
    if before:
        return backward
    if key.nullable:
        return or_(forward, column.is_(None))
    return forward
