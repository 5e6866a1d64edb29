"""``SignalRepository``: market signals, typed by ``signal_type``, and COPY ingest."""

from __future__ import annotations

import builtins
import datetime as dt
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import func, inspect, select

from biotech_ma_db.auditing import audit_context
from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models import Severity, Signal, SignalType
from biotech_ma_db.repositories.base import Criterion, Repository, check_id, translating_errors
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
    check_limit,
    check_offset,
)
from biotech_ma_db.repositories.validation import check_json

__all__ = ["SignalRepository"]

MAX_INGEST_ROWS: Final = 1_000_000
"""Most rows one :meth:`SignalRepository.bulk_ingest` call accepts."""

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
_BLANK: Final[dict[str, object]] = dict.fromkeys(_COPY_COLUMNS)
_record: Final = operator.itemgetter(*_COPY_COLUMNS)
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
        criteria = [Signal.company_id == check_id(company_id, "company_id")]
        criteria.extend(self._criteria_for(signal_types, start_date, end_date, min_severity))
        stmt = (
            select(Signal)
            .where(*criteria)
            .order_by(Signal.event_date.desc(), Signal.id.desc())
            .limit(check_limit(limit))
            .offset(check_offset(offset))
        )
        return await self._scalars(stmt)

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
        records = self._records(materialized)
        table = inspect(Signal).local_table
        schema = getattr(table, "schema", None)
        with translating_errors():
            async with self.session.begin_nested():
                connection = await self.session.connection()
                raw = await connection.get_raw_connection()
                driver: Any = raw.driver_connection
                status = await driver.copy_records_to_table(
                    getattr(table, "name", "signals"),
                    records=records,
                    columns=_COPY_COLUMNS,
                    schema_name=schema,
                )
        return int(str(status).rsplit(" ", 1)[-1])

    def _records(self, rows: Sequence[Mapping[str, object]]) -> builtins.list[tuple[object, ...]]:
        rules = self.rules
        context = audit_context(self.session.sync_session)
        defaults: dict[str, object] = dict(_BLANK)
        if context is not None:
            stamp = {
                "created_by": context.actor,
                "updated_by": context.actor,
                "change_reason": context.reason,
            }
            defaults.update({k: v for k, v in stamp.items() if v is not None})
        records = []
        for index, row in enumerate(rows):
            if type(row) is not dict and not isinstance(row, Mapping):
                raise ValidationError("rows", "expected a mapping", row=index)
            data = row.get("signal_data")
            values = {k: v for k, v in row.items() if k != "signal_data"}
            cleaned = defaults | rules.create(values, row=index)
            # The driver's jsonb codec (set up by SQLAlchemy) takes JSON text.
            cleaned["signal_data"] = (
                "{}" if data is None else check_json("signal_data", data, row=index)
            )
            # Plain strings for the text columns (the cleaned values are enum members).
            severity = cleaned["severity"]
            cleaned["severity"] = _MEDIUM if severity is None else severity.value  # type: ignore[attr-defined]  # a Severity once cleaned
            cleaned["signal_type"] = cleaned["signal_type"].value  # type: ignore[attr-defined]  # a SignalType once cleaned
            records.append(_record(cleaned))
        return records

    def _criteria_for(
        self,
        signal_types: Sequence[SignalType | str] | None,
        start_date: dt.datetime | dt.date | None,
        end_date: dt.datetime | dt.date | None,
        min_severity: Severity | str | None,
    ) -> builtins.list[Criterion]:
        criteria: builtins.list[Criterion] = []
        if signal_types is not None:
            if isinstance(signal_types, str):
                signal_types = [signal_types]
            kinds = [self.rules.value("signal_type", kind) for kind in signal_types]
            criteria.append(Signal.signal_type.in_(kinds))
        if start_date is not None:
            criteria.append(Signal.event_date >= _moment("start_date", start_date))
        if end_date is not None:
            if isinstance(end_date, dt.datetime):
                criteria.append(Signal.event_date <= _moment("end_date", end_date))
            else:
                next_day = _moment("end_date", end_date) + dt.timedelta(days=1)
                criteria.append(Signal.event_date < next_day)
        if min_severity is not None:
            floor = self.rules.value("severity", min_severity)
            assert isinstance(floor, Severity)
            criteria.append(Signal.severity.in_([s for s in Severity if s.rank >= floor.rank]))
        return criteria


def _moment(field: str, value: object) -> dt.datetime:
    """A timezone-aware datetime from a datetime (naive = UTC) or a date (its start, UTC)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
    raise ValidationError(field, f"expected a date or datetime, got {type(value).__name__}")
