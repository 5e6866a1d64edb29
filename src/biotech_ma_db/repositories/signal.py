"""``SignalRepository``: market signals, typed by ``signal_type``, and COPY ingest."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    any_,
    bindparam,
    func,
    inspect,
    select,
)
from sqlalchemy.orm import Mapper

from biotech_ma_db.auditing import audit_context
from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models import Severity, Signal, SignalType
from biotech_ma_db.repositories._fast import Builder, QueryShapes
from biotech_ma_db.repositories.base import Criterion, Repository, check_id, translating_errors
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
    check_limit,
    check_offset,
)

__all__ = ["SignalRepository"]

MAX_INGEST_ROWS: Final = 1_000_000
"""Most rows one :meth:`SignalRepository.bulk_ingest` call accepts."""

DEFAULT_STREAM_BATCH: Final = 1_000
"""Rows per batch of :meth:`SignalRepository.stream_by_company` unless given."""
MAX_STREAM_BATCH: Final = 10_000

# The columns COPY writes, in record order; the rest (key, timestamps) are server defaults.
_COPY_COLUMNS: Final = (
    "company_id",
    "signal_type",
    "event_date",
    "severity",
    "title",
    "description",
    "source",
    "source_url",
    "signal_data",
    "ma_impact_score",
    "created_by",
    "updated_by",
    "change_reason",
)
_MEDIUM: Final = Severity.MEDIUM.value


class SignalRepository(Repository[Signal]):
    """Signals: create (as the subclass of their type), per-company queries, COPY ingest."""

    model = Signal
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": Signal.id,
        "event_date": Signal.event_date,
        "ma_impact_score": Signal.ma_impact_score,
        "created_at": Signal.created_at,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "company_id": Signal.company_id,
        "signal_type": Signal.signal_type,
        "severity": Signal.severity,
        "source": Signal.source,
    }
    default_order: ClassVar[SortSpec] = "-event_date"

    async def create(  # type: ignore[override]  # the original API names these arguments
        self,
        *,
        company_id: int,
        signal_type: SignalType | str,
        event_date: dt.datetime,
        title: str,
        severity: Severity | str = Severity.MEDIUM,
        signal_data: Mapping[str, object] | None = None,
        **values: object,
    ) -> Signal:
        """Insert a signal and return it as the subclass of its type.

        ``create(signal_type="sec_filing", ...)`` returns a
        :class:`~biotech_ma_db.models.SecFilingSignal`.  A naive ``event_date`` is read
        as UTC.

        Raises:
            ValidationError: Before any SQL, for a bad value or unknown field.
        """
        fields: dict[str, object] = {
            "company_id": company_id,
            "signal_type": signal_type,
            "event_date": event_date,
            "title": title,
            "severity": severity,
            **values,
        }
        if signal_data is not None:
            fields["signal_data"] = signal_data
        return await super().create(**fields)

    async def get_by_company(
        self,
        company_id: int,
        signal_types: Sequence[SignalType | str] | None = None,
        start_date: dt.datetime | dt.date | None = None,
        end_date: dt.datetime | dt.date | None = None,
        min_severity: Severity | str | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
    ) -> builtins.list[Signal]:
        """A company's signals, newest first.

        Args:
            company_id: The company.
            signal_types: Only these types.
            start_date: Events at or after this moment (a date means its start, UTC).
            end_date: Events at or before this moment (a date includes the whole day).
            min_severity: Only this severity or a higher one.
            limit: Page size (1..500).
            offset: Rows to skip.
        """
        company = check_id(company_id, "company_id")
        window = self._window(signal_types, start_date, end_date, min_severity)
        size, skip = check_limit(limit), check_offset(offset)
        shape = (window.types is not None, window.start is not None, window.end_op, window.floor)
        fast = _SHAPES.get(shape, _MAPPER, _by_company_query(shape))
        found = await self._fast(
            fast,
            {
                "company_id": company,
                "types": window.types and [kind.value for kind in window.types],
                "start": window.start,
                "end": window.end,
                "severities": window.floor and [s.value for s in _at_least(window.floor)],
                "limit": size,
                "offset": skip,
            },
        )
        if found is not None:
            return found
        criteria = [Signal.company_id == company, *window.criteria()]
        stmt = (
            select(Signal)
            .where(*criteria)
            .order_by(Signal.event_date.desc(), Signal.id.desc())
            .limit(size)
            .offset(skip)
        )
        return await self._scalars(stmt)

    async def stream_by_company(
        self,
        company_id: int,
        signal_types: Sequence[SignalType | str] | None = None,
        start_date: dt.datetime | dt.date | None = None,
        end_date: dt.datetime | dt.date | None = None,
        min_severity: Severity | str | None = None,
        *,
        batch_size: int = DEFAULT_STREAM_BATCH,
    ) -> AsyncIterator[builtins.list[Signal]]:
        """A company's signals, newest first, in batches: for reads too large to hold at once.

        The same signals, in the same order, as :meth:`get_by_company` with the same
        filters, but with no page limit: they come from a server-side cursor
        ``batch_size`` rows at a time, so the client holds one batch (plus what the
        caller keeps).  The objects are tracked by the session like any other, weakly:
        a batch the caller drops is freed.  The cursor lives in the session's
        transaction, which stays open until the iteration ends (or the iterator is
        closed)::

            async with db.session(read_only=True) as session:
                async for batch in SignalRepository(session).stream_by_company(company_id):
                    write_csv(batch)

        The arguments are checked when the iteration starts, before any SQL.

        Args:
            company_id: The company.
            signal_types: Only these types.
            start_date: Events at or after this moment (a date means its start, UTC).
            end_date: Events at or before this moment (a date includes the whole day).
            min_severity: Only this severity or a higher one.
            batch_size: Rows per batch (1..10,000).

        Raises:
            ValidationError: For a bad argument, before any SQL.
        """
        company = check_id(company_id, "company_id")
        window = self._window(signal_types, start_date, end_date, min_severity)
        size = _batch_size(batch_size)
        stmt = (
            select(Signal)
            .where(Signal.company_id == company, *window.criteria())
            .order_by(Signal.event_date.desc(), Signal.id.desc())
            .execution_options(yield_per=size)
        )
        with translating_errors():
            result = await self.session.stream_scalars(stmt)
        try:
            while True:
                with translating_errors():
                    batch = await result.fetchmany(size)
                if not batch:
                    return
                yield builtins.list(batch)
        finally:
            with translating_errors():
                await result.close()

    async def get_count_by_type(self, company_id: int | None = None) -> dict[str, int]:
        """Number of signals per type (only types that occur), for one company or all."""
        stmt = select(Signal.signal_type, func.count()).group_by(Signal.signal_type)
        if company_id is not None:
            stmt = stmt.where(Signal.company_id == check_id(company_id, "company_id"))
        result = await self._execute(stmt)
        return {str(SignalType(row[0])): int(row[1]) for row in result.all()}

    async def bulk_ingest(self, rows: Iterable[Mapping[str, object]]) -> int:
        """Load many signals with PostgreSQL ``COPY``: all of them, or none.

        Every row is validated first; a bad one raises before anything is sent.  The COPY
        runs inside a savepoint of the session's transaction, so a failure on the server
        (e.g. an unknown ``company_id``) also leaves nothing behind and the session stays
        usable.  Rows written this way are not returned as objects (and not audited row by
        row); the unit of work's actor and reason still fill the audit columns.

        Args:
            rows: Mappings with the columns of :meth:`create` (``signal_data`` as a dict).

        Returns:
            The number of rows written.

        Raises:
            ValidationError: Naming the row index and field, before any SQL.
        """
        materialized = builtins.list(rows)
        if len(materialized) > MAX_INGEST_ROWS:
            raise ValidationError("rows", f"at most {MAX_INGEST_ROWS} rows per call")
        if not materialized:
            return 0
        records = self.rules.driver_records(materialized, _COPY_COLUMNS, self._absent())
        table = inspect(Signal).local_table
        async with self._driver_in_savepoint() as (driver, _dialect):
            status = await driver.copy_records_to_table(
                getattr(table, "name", "signals"),
                records=records,
                columns=_COPY_COLUMNS,
                schema_name=getattr(table, "schema", None),
            )
        return int(str(status).rsplit(" ", 1)[-1])

    def _absent(self) -> dict[str, object]:
        """COPY values for columns a row leaves out: the server defaults and audit stamp.

        COPY sends every listed column, so PostgreSQL's defaults never apply: the ones a
        row may leave out are filled here.
        """
        absent: dict[str, object] = {"severity": _MEDIUM, "signal_data": "{}"}
        context = audit_context(self.session.sync_session)
        if context is not None:
            stamp = {
                "created_by": context.actor,
                "updated_by": context.actor,
                "change_reason": context.reason,
            }
            absent.update({k: v for k, v in stamp.items() if v is not None})
        return absent

    def _window(
        self,
        signal_types: Sequence[SignalType | str] | None,
        start_date: dt.datetime | dt.date | None,
        end_date: dt.datetime | dt.date | None,
        min_severity: Severity | str | None,
    ) -> _Window:
        kinds: builtins.list[SignalType] | None = None
        if signal_types is not None:
            if isinstance(signal_types, str):
                signal_types = [signal_types]
            kinds = [
                cast("SignalType", self.rules.value("signal_type", kind)) for kind in signal_types
            ]
        start = _moment("start_date", start_date) if start_date is not None else None
        end, end_op = None, None
        if end_date is not None:
            if isinstance(end_date, dt.datetime):
                end, end_op = _moment("end_date", end_date), "<="
            else:
                end, end_op = _moment("end_date", end_date) + dt.timedelta(days=1), "<"
        floor: Severity | None = None
        if min_severity is not None:
            cleaned = self.rules.value("severity", min_severity)
            assert isinstance(cleaned, Severity)
            floor = cleaned
        return _Window(kinds, start, end, end_op, floor)


@dataclass(frozen=True, slots=True)
class _Window:
    """Validated filters of :meth:`SignalRepository.get_by_company`."""

    types: builtins.list[SignalType] | None
    start: dt.datetime | None
    end: dt.datetime | None
    end_op: str | None  # "<=" for a datetime, "<" for the day after a date
    floor: Severity | None

    def criteria(self) -> builtins.list[Criterion]:
        criteria: builtins.list[Criterion] = []
        if self.types is not None:
            criteria.append(Signal.signal_type.in_(self.types))
        if self.start is not None:
            criteria.append(Signal.event_date >= self.start)
        if self.end is not None:
            bound = (
                Signal.event_date <= self.end
                if self.end_op == "<="
                else Signal.event_date < self.end
            )
            criteria.append(bound)
        if self.floor is not None:
            criteria.append(Signal.severity.in_(_at_least(self.floor)))
        return criteria


def _batch_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STREAM_BATCH:
        raise ValidationError("batch_size", f"expected an integer from 1 to {MAX_STREAM_BATCH}")
    return value


def _at_least(floor: Severity) -> builtins.list[Severity]:
    return [s for s in Severity if s.rank >= floor.rank]


def _by_company_query(shape: tuple[bool, bool, str | None, Severity | None]) -> Builder:
    types, start, end_op, floor = shape

    def build(columns: Sequence[Column[Any]]) -> Select[Any]:
        c = _TABLE.c
        criteria: builtins.list[ColumnElement[bool]] = [
            c.company_id == bindparam("company_id", type_=c.company_id.type)
        ]
        if types:
            criteria.append(c.signal_type == any_(bindparam("types", type_=ARRAY(String))))
        if start:
            criteria.append(c.event_date >= bindparam("start", type_=c.event_date.type))
        if end_op == "<=":
            criteria.append(c.event_date <= bindparam("end", type_=c.event_date.type))
        elif end_op == "<":
            criteria.append(c.event_date < bindparam("end", type_=c.event_date.type))
        if floor is not None:
            criteria.append(c.severity == any_(bindparam("severities", type_=ARRAY(String))))
        return (
            select(*columns)
            .where(*criteria)
            .order_by(c.event_date.desc(), c.id.desc())
            .limit(bindparam("limit", type_=Integer()))
            .offset(bindparam("offset", type_=Integer()))
        )

    return build


_MAPPER: Mapper[Signal] = inspect(Signal)
_TABLE: Table = Signal.__table__  # type: ignore[assignment]  # a declarative table
_SHAPES = QueryShapes()


def _moment(field: str, value: object) -> dt.datetime:
    """A timezone-aware datetime from a datetime (naive = UTC) or a date (its start, UTC)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
    raise ValidationError(field, f"expected a date or datetime, got {type(value).__name__}")
