"""DataFrames of a company's signals, its score history and the top-scores ranking (polars).

Needs the ``frames`` extra (``pip install 'biotech-ma-db[frames]'``)::

    from biotech_ma_db import frames

    async with Database.from_url(url) as db:
        signals = await frames.signals_frame(db, company_id, start_date=dt.date(2025, 1, 1))

    with SyncDatabase.from_url(url) as db:                 # scripts and notebooks
        top = frames.top_scores_frame(db, limit=50)        # no await with a SyncDatabase

Every function takes a :class:`~biotech_ma_db.Database`, an ``AsyncSession`` or a
:class:`~biotech_ma_db.UnitOfWork` (and returns an awaitable), or a
:class:`~biotech_ma_db.sync.SyncDatabase` or :class:`~biotech_ma_db.sync.SyncUnitOfWork`
(and returns the frame).  Within a session or unit of work the frame sees its
uncommitted work, as its repositories would.

How.  The rows are those of the repository method of the same name
(:meth:`SignalRepository.get_by_company`, :meth:`ScoreRepository.get_history`,
:meth:`ScoreRepository.get_top_scores`): the same validation, and the statement built by
the repository's own statement builder (criteria, joins and order), with a select list
of the frame's columns and no page limit.  It runs with asyncpg's ``fetch`` on the
session's connection, and the frame is built column by column from the driver's records;
no ORM object is made.  Timestamps travel as epoch microseconds and scores as float8, so
that the driver makes no ``datetime``/``Decimal`` object only for polars to take apart.

Why polars, not pandas.  A polars column is built straight from a Python list with an
explicit dtype, and its dtypes say what the database says: timezone-aware ``Datetime``,
``Date``, exact ``Decimal``, ``List(String)`` for text arrays, ``Enum`` for the closed
vocabularies; pandas would need pyarrow for most of these and an index nobody asked for.
``frame.to_pandas()`` is one call away for pandas code.

Dtypes.

- ``event_date``, ``created_at``: ``Datetime("us", "UTC")``; ``score_date``: ``Date``.
- ``signal_type``, ``severity``: ``Enum`` (``severity`` ordered low < medium < high <
  critical, so it sorts and compares by rank).
- Scores (``total_score`` ... ``score_change_90d``, ``percentile_rank``,
  ``ma_impact_score``): ``Float64``.  They are ratings with two (four) decimals, far
  inside float64's 15 significant digits, and what one computes with.
- Money (``market_cap_usd``): ``Decimal(20, 2)``, exact cents.
- ``signal_data``: ``String``, the JSON text (``pl.col("signal_data").str.json_decode()``).
- ``key_drivers``, ``risk_factors``: ``List(String)``.

An empty result is an empty frame with the same columns and dtypes.
"""

from __future__ import annotations

import datetime as dt
import gc
import weakref
from collections.abc import Callable, Coroutine, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, overload

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Double,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db.database import Database
from biotech_ma_db.engine import AUTOCOMMIT_READS_OPTION
from biotech_ma_db.errors import ValidationError, translate_error
from biotech_ma_db.models import Company, MAScore, Severity, Signal, SignalType
from biotech_ma_db.repositories import SignalRepository, rules_for
from biotech_ma_db.repositories.base import check_id
from biotech_ma_db.repositories.query import check_limit
from biotech_ma_db.repositories.score import MAX_HISTORY_DAYS, _top_query, today_utc
from biotech_ma_db.repositories.signal import _by_company_query
from biotech_ma_db.sa_internals import bind_processor, compile_positional
from biotech_ma_db.sync import SyncDatabase, SyncUnitOfWork
from biotech_ma_db.unit_of_work import UnitOfWork

try:
    import polars as pl
except ImportError as exc:  # tests/integration/test_frames.py hides polars in a subprocess
    raise ImportError(
        "biotech_ma_db.frames needs polars: pip install 'biotech-ma-db[frames]'"
    ) from exc

__all__ = ["AsyncSource", "SyncSource", "score_history_frame", "signals_frame", "top_scores_frame"]

AsyncSource = Database | AsyncSession | UnitOfWork
"""Where an awaitable frame reads from."""
SyncSource = SyncDatabase | SyncUnitOfWork
"""Where a frame is read from without ``await``."""

_SIGNALS: Table = Signal.__table__  # type: ignore[assignment]  # a declarative table
_SCORES: Table = MAScore.__table__  # type: ignore[assignment]  # a declarative table
_COMPANIES: Table = Company.__table__  # type: ignore[assignment]  # a declarative table
_UTC_MICROSECONDS: Final = pl.Datetime("us", "UTC")


@dataclass(frozen=True, slots=True)
class _Column:
    """One frame column: what is selected, the dtype it is built with, the dtype it ends as."""

    name: str
    select: ColumnElement[Any]
    dtype: pl.DataType
    final: pl.DataType | None = None


def _plain(
    column: ColumnElement[Any], dtype: pl.DataType, final: pl.DataType | None = None
) -> _Column:
    return _Column(column.key or "", column, dtype, final)


def _moment(column: ColumnElement[Any]) -> _Column:
    # Exact epoch microseconds, computed by the server (which has CPU to spare while the
    # client decodes): an int column costs polars next to nothing, where aware datetimes
    # cost it 100 ms per 100,000 and naive ones 25 ms (bench/frames.py, CPU columns).
    micros = cast(func.extract("epoch", column) * 1_000_000, BigInteger).label(column.key)
    return _Column(column.key or "", micros, pl.Int64(), _UTC_MICROSECONDS)


def _score(column: ColumnElement[Any]) -> _Column:
    return _Column(column.key or "", cast(column, Double()).label(column.key), pl.Float64())


def _enum(column: ColumnElement[Any], values: Sequence[str]) -> _Column:
    return _plain(column, pl.String(), pl.Enum(list(values)))


_SIGNAL_COLUMNS: Final = (
    _plain(_SIGNALS.c.id, pl.Int64()),
    _plain(_SIGNALS.c.company_id, pl.Int64()),
    _enum(_SIGNALS.c.signal_type, [kind.value for kind in SignalType]),
    _moment(_SIGNALS.c.event_date),
    _enum(_SIGNALS.c.severity, [level.value for level in Severity]),
    _plain(_SIGNALS.c.title, pl.String()),
    _plain(_SIGNALS.c.description, pl.String()),
    _plain(_SIGNALS.c.source, pl.String()),
    _plain(_SIGNALS.c.source_url, pl.String()),
    _Column("signal_data", cast(_SIGNALS.c.signal_data, Text).label("signal_data"), pl.String()),
    _score(_SIGNALS.c.ma_impact_score),
    _moment(_SIGNALS.c.created_at),
)
_SCORE_COLUMNS: Final = (
    _plain(_SCORES.c.id, pl.Int64()),
    _plain(_SCORES.c.company_id, pl.Int64()),
    _plain(_SCORES.c.score_date, pl.Date()),
    *(
        _score(_SCORES.c[name])
        for name in (
            "total_score",
            "pipeline_score",
            "financial_score",
            "strategic_score",
            "signal_score",
            "percentile_rank",
            "score_change_30d",
            "score_change_90d",
        )
    ),
    _plain(_SCORES.c.key_drivers, pl.List(pl.String())),
    _plain(_SCORES.c.risk_factors, pl.List(pl.String())),
    _plain(_SCORES.c.model_version, pl.String()),
)
_TOP_COLUMNS: Final = (
    *_SCORE_COLUMNS,
    _plain(_COMPANIES.c.ticker, pl.String()),
    _plain(_COMPANIES.c.name, pl.String()),
    _plain(_COMPANIES.c.market_cap_usd, pl.Decimal(20, 2)),
)


# -- the public functions ----------------------------------------------------------------


@overload
def signals_frame(
    source: SyncSource,
    company_id: int,
    *,
    signal_types: Sequence[SignalType | str] | None = None,
    start_date: dt.datetime | dt.date | None = None,
    end_date: dt.datetime | dt.date | None = None,
    min_severity: Severity | str | None = None,
) -> pl.DataFrame: ...
@overload
def signals_frame(
    source: AsyncSource,
    company_id: int,
    *,
    signal_types: Sequence[SignalType | str] | None = None,
    start_date: dt.datetime | dt.date | None = None,
    end_date: dt.datetime | dt.date | None = None,
    min_severity: Severity | str | None = None,
) -> Coroutine[Any, Any, pl.DataFrame]: ...
def signals_frame(
    source: SyncSource | AsyncSource,
    company_id: int,
    *,
    signal_types: Sequence[SignalType | str] | None = None,
    start_date: dt.datetime | dt.date | None = None,
    end_date: dt.datetime | dt.date | None = None,
    min_severity: Severity | str | None = None,
) -> pl.DataFrame | Coroutine[Any, Any, pl.DataFrame]:
    """A company's signals, newest first: the rows of ``SignalRepository.get_by_company``.

    The same filters (a date ``end_date`` includes its whole day), without its page limit.

    Raises:
        ValidationError: Before any SQL, for a bad id, type, date or severity.
    """
    check_id(company_id, "company_id")

    async def read(session: AsyncSession) -> pl.DataFrame:
        # The repository's own checks and filters (a private helper: one copy of the rules).
        window = SignalRepository(session)._window(signal_types, start_date, end_date, min_severity)
        floor = window.floor
        shape = (window.types is not None, window.start is not None, window.end_op, floor)
        statement = _by_company_query(shape)(list(_SIGNALS.c))
        values = {
            "company_id": company_id,
            "types": None if window.types is None else [kind.value for kind in window.types],
            "start": window.start,
            "end": window.end,
            "severities": None
            if floor is None
            else [s.value for s in Severity if s.rank >= floor.rank],
            "limit": None,  # LIMIT NULL: every row
            "offset": 0,
        }
        return await _frame(session, ("signals", shape), statement, _SIGNAL_COLUMNS, values)

    return _dispatch(source, read)


@overload
def score_history_frame(source: SyncSource, company_id: int, days: int = 90) -> pl.DataFrame: ...
@overload
def score_history_frame(
    source: AsyncSource, company_id: int, days: int = 90
) -> Coroutine[Any, Any, pl.DataFrame]: ...
def score_history_frame(
    source: SyncSource | AsyncSource, company_id: int, days: int = 90
) -> pl.DataFrame | Coroutine[Any, Any, pl.DataFrame]:
    """A company's scores of the last ``days`` days (UTC), oldest first (``get_history``).

    Raises:
        ValidationError: Before any SQL, for a bad id or ``days``.
    """
    check_id(company_id, "company_id")
    if type(days) is not int or not 0 <= days <= MAX_HISTORY_DAYS:
        raise ValidationError("days", f"expected an integer from 0 to {MAX_HISTORY_DAYS}")

    async def read(session: AsyncSession) -> pl.DataFrame:
        statement = _history_statement()
        values = {"company_id": company_id, "since": today_utc() - dt.timedelta(days=days)}
        return await _frame(session, ("history",), statement, _SCORE_COLUMNS, values)

    return _dispatch(source, read)


@overload
def top_scores_frame(
    source: SyncSource, limit: int = 50, score_date: dt.date | None = None
) -> pl.DataFrame: ...
@overload
def top_scores_frame(
    source: AsyncSource, limit: int = 50, score_date: dt.date | None = None
) -> Coroutine[Any, Any, pl.DataFrame]: ...
def top_scores_frame(
    source: SyncSource | AsyncSource, limit: int = 50, score_date: dt.date | None = None
) -> pl.DataFrame | Coroutine[Any, Any, pl.DataFrame]:
    """The highest scores with their company's ticker, name and market cap (``get_top_scores``).

    Each live company's latest score, or the scores of ``score_date``; highest first.

    Raises:
        InvalidQueryError: ``limit`` is not 1..500.
        ValidationError: ``score_date`` is not a date.
    """
    size = check_limit(limit)
    day = None if score_date is None else rules_for(MAScore).value("score_date", score_date)

    async def read(session: AsyncSession) -> pl.DataFrame:
        statement = _top_query(by_date=day is not None)([*_SCORES.c, *_COMPANIES.c])
        values = {"limit": size, "score_date": day}
        return await _frame(session, ("top", day is not None), statement, _TOP_COLUMNS, values)

    return _dispatch(source, read)


# -- running ----------------------------------------------------------------------------

_Reader = Callable[[AsyncSession], Coroutine[Any, Any, pl.DataFrame]]


@overload
def _dispatch(source: SyncSource, read: _Reader) -> pl.DataFrame: ...
@overload
def _dispatch(source: AsyncSource, read: _Reader) -> Coroutine[Any, Any, pl.DataFrame]: ...
def _dispatch(
    source: SyncSource | AsyncSource, read: _Reader
) -> pl.DataFrame | Coroutine[Any, Any, pl.DataFrame]:
    if isinstance(source, SyncDatabase):
        return source.run(_on_database, source.database, read)
    if isinstance(source, SyncUnitOfWork):
        return source.run(lambda uow: read(uow.session))
    if isinstance(source, Database):
        return _on_database(source, read)
    if isinstance(source, UnitOfWork):
        return read(source.session)
    if isinstance(source, AsyncSession):
        return read(source)
    raise TypeError(f"expected a database, session or unit of work, got {type(source).__name__}")


async def _on_database(database: Database, read: _Reader) -> pl.DataFrame:
    async with database.session() as session:
        return await read(session)


def _history_statement() -> Select[Any]:
    """``ScoreRepository.get_history``'s statement, in Core (the repository builds it inline)."""
    return (
        _SCORES.select()
        .where(
            _SCORES.c.company_id == _bind("company_id", _SCORES.c.company_id),
            _SCORES.c.score_date >= _bind("since", _SCORES.c.score_date),
        )
        .order_by(_SCORES.c.score_date)
    )


def _bind(name: str, column: ColumnElement[Any]) -> BindParameter[Any]:
    return bindparam(name, type_=column.type)


@dataclass(frozen=True, slots=True)
class _Sql:
    """A statement compiled for one dialect: its text and its parameters in order."""

    text: str
    params: tuple[tuple[str, object, Callable[[Any], Any] | None], ...]

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect) -> _Sql:
        compiled = compile_positional(statement, dialect)
        params = tuple(
            (name, bind.effective_value, bind_processor(bind.type, dialect))
            for name, bind in compiled.params
        )
        return cls(compiled.sql, params)

    def arguments(self, values: Mapping[str, object]) -> list[object]:
        return [
            value if processor is None else processor(value)
            for name, default, processor in self.params
            for value in (values.get(name, default),)
        ]


_COMPILED: weakref.WeakKeyDictionary[Dialect, dict[Hashable, _Sql]] = weakref.WeakKeyDictionary()


async def _frame(
    session: AsyncSession,
    key: Hashable,
    statement: Select[Any],
    columns: Sequence[_Column],
    values: Mapping[str, object],
) -> pl.DataFrame:
    """Run ``statement`` with the select list of ``columns``; the frame of its records."""
    try:
        if session.autoflush and (session.new or session.dirty or session.deleted):
            await session.flush()  # as the repository's query would autoflush
        connection = await session.connection()
        dialect = connection.dialect
        compiled = _COMPILED.setdefault(dialect, {})
        sql = compiled.get(key)
        if sql is None:
            sql = _Sql.of(statement.with_only_columns(*(c.select for c in columns)), dialect)
            compiled[key] = sql
        driver: Any = (await connection.get_raw_connection()).driver_connection
        if (
            not driver.is_in_transaction()
            and not connection.sync_engine.get_execution_options().get(AUTOCOMMIT_READS_OPTION)
        ):
            # A lone statement is what Database allows (read committed sees the same rows);
            # elsewhere (behind pgbouncer, a foreign engine) begin first: SQLAlchemy's
            # adapter sends BEGIN before its first statement.
            await connection.exec_driver_sql("SELECT 1")
        try:
            records = await driver.fetch(sql.text, *sql.arguments(values))
        except BaseException as exc:
            if getattr(exc, "sqlstate", None) is None:
                # Not an answer of the server (cancelled, socket gone): its state is unknown.
                await connection.invalidate()
            raise
    except Exception as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc
    return _build(records, columns)


def _build(records: Sequence[Sequence[object]], columns: Sequence[_Column]) -> pl.DataFrame:
    """Column lists from the records (one transposition), one typed Series per column."""
    data: Sequence[Sequence[object]] = _transposed(records) if records else [() for _ in columns]
    frame = pl.DataFrame(
        [pl.Series(c.name, values, dtype=c.dtype) for c, values in zip(columns, data, strict=True)]
    )
    casts = [pl.col(c.name).cast(c.final) for c in columns if c.final is not None]
    return frame.with_columns(casts) if casts else frame


def _transposed(records: Sequence[Sequence[object]]) -> list[tuple[object, ...]]:
    """The records' columns, with the cyclic garbage collector paused meanwhile.

    ``zip(*records)`` makes one iterator per record: 100,000 new tracked objects, enough
    to set off full collections that walk every object of the process (measured: 317 ms
    with the collector on, 82 ms without, for 100,000 rows of 12 columns).  Nothing here
    creates a reference cycle, so pausing it loses nothing; its state is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return list(zip(*records, strict=True))
    finally:
        if enabled:
            gc.enable()
