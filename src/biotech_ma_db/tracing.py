"""OpenTelemetry tracing of a ``Database``: a span per unit of work, its statements under it.

Needs the ``tracing`` extra (``pip install 'biotech-ma-db[tracing]'``: the OpenTelemetry
API and SDK and ``opentelemetry-instrumentation-sqlalchemy``)::

    from biotech_ma_db.tracing import instrument

    instrument(db)                    # the global tracer provider, or tracer_provider=...
    async with db.unit_of_work(client_id=7) as uow:
        await uow.companies.get_by_ticker("ABCD")      # a statement span
        await uow.commit()                             # under one unit-of-work span

What :func:`instrument` adds, for the primary's engine and each read replica's:

- **Statement spans** from the SQLAlchemy instrumentation (its ``EngineTracer``, what
  ``SQLAlchemyInstrumentor().instrument(engine=...)`` installs, here per engine so that
  each ``Database`` can be instrumented and uninstrumented on its own; an engine the
  instrumentor already traces is left as it is).  The repositories' fast read path sends
  its SELECTs to asyncpg directly, past SQLAlchemy's cursor events; it calls the same
  tracer's ``before_cursor_execute`` listener through the engine's statement hook
  (:mod:`biotech_ma_db.engine.statement_hook`), so those reads get the same spans.
- **A span per unit of work**, ``biotech_ma_db.unit_of_work``, current while the unit
  runs (so its statements are its children), with ``biotech_ma_db.unit_of_work.id``,
  ``.read_only``, ``.attempt`` (of ``run_in_transaction``: each attempt is its own span,
  the retried ones ending in the transient error), ``.isolation_level``,
  ``biotech_ma_db.client_id``, and at the end ``.outcome`` (``committed``,
  ``rolled_back`` or the error's class) and ``.duration_ms``.  A unit that fails has
  status ERROR and an ``exception`` event.

Never recorded: bound parameters (statement spans carry the text with ``$n``
placeholders; SQL comments stay off), passwords (spans name the host, port, database and
user), and the driver's error messages, which may quote a value: a failed statement's
status and a unit's exception event carry the library's typed error, whose messages name
SQLSTATEs and constraints only, with the frames of the failure but not the driver's text.

Structured logs need no extra: see :mod:`biotech_ma_db.unit_events` and
:class:`~biotech_ma_db.json_logs.JsonLogFormatter` (re-exported here).
"""

from __future__ import annotations

import asyncio
import traceback
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from biotech_ma_db import __version__, unit_events
from biotech_ma_db.database import Database
from biotech_ma_db.engine.statement_hook import STATEMENT_HOOK_OPTION
from biotech_ma_db.errors import DatabaseError, translate_error
from biotech_ma_db.json_logs import JsonLogFormatter
from biotech_ma_db.unit_events import UnitRecord

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled
    from opentelemetry.metrics import get_meter
except ImportError as missing:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "biotech_ma_db.tracing needs OpenTelemetry and its SQLAlchemy instrumentation: "
        "pip install 'biotech-ma-db[tracing]'"
    ) from missing

__all__ = ["UNIT_SPAN_NAME", "JsonLogFormatter", "instrument", "uninstrument"]

UNIT_SPAN_NAME: Final = "biotech_ma_db.unit_of_work"
"""Name of the span of each unit of work."""

_SCOPE: Final = "biotech_ma_db.tracing"
_PREFIX: Final = "biotech_ma_db.unit_of_work."


@dataclass(slots=True)
class _Traced:
    """What :func:`instrument` did to one engine, so :func:`uninstrument` can undo it."""

    tracer: trace.Tracer
    engine_tracer: EngineTracer
    owns_engine_tracer: bool


_traced: weakref.WeakKeyDictionary[Engine, _Traced] = weakref.WeakKeyDictionary()


def instrument(db: Database, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace ``db``: statement spans on its engines and a span per unit of work.

    Idempotent per engine.  See the module docstring for what the spans carry.

    Args:
        db: The database whose engines (primary and read replicas) to trace.
        tracer_provider: Where the spans go (the global tracer provider when omitted).
    """
    tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
    for engine in _engines(db):
        sync_engine = engine.sync_engine
        if sync_engine in _traced:
            continue
        engine_tracer = _existing_engine_tracer(sync_engine)
        owns = engine_tracer is None
        if engine_tracer is None:
            usage = get_meter(_SCOPE, __version__).create_up_down_counter(
                "db.client.connections.usage",
                unit="connections",
                description="The number of connections in the state given by 'state'.",
            )
            # Comments (sqlcommenter) stay off: they would change every statement's text.
            engine_tracer = EngineTracer(tracer, sync_engine, usage)  # type: ignore[no-untyped-call]
        _traced[sync_engine] = _Traced(tracer, engine_tracer, owns)
        _listen_before_engine_tracer(sync_engine)
        sync_engine.update_execution_options(
            **{STATEMENT_HOOK_OPTION: _FastReadSpans(engine_tracer, sync_engine)}
        )
    unit_events.add_observer(_UNIT_SPANS)


def uninstrument(db: Database) -> None:
    """Undo :func:`instrument` for ``db``'s engines (a no-op for engines never traced)."""
    for engine in _engines(db):
        sync_engine = engine.sync_engine
        done = _traced.pop(sync_engine, None)
        if done is None:
            continue
        sync_engine.update_execution_options(**{STATEMENT_HOOK_OPTION: None})
        event.remove(sync_engine, "handle_error", _end_failed_statement)
        if done.owns_engine_tracer:
            _remove_engine_tracer(sync_engine)
    if not _traced:
        unit_events.remove_observer(_UNIT_SPANS)


def _engines(db: Database) -> list[AsyncEngine]:
    """The primary's engine and each read replica's."""
    return [db.engine, *(replica.engine for replica in db.router.replicas)]


# The SQLAlchemy instrumentation keeps its listeners in EngineTracer's class-level
# registry ((weak engine, event name, listener) triples): how an engine it already traces
# is recognised, and how this module's own tracer on one engine is removed again.


def _existing_engine_tracer(engine: Engine) -> EngineTracer | None:
    for target, identifier, listener in EngineTracer._remove_event_listener_params:
        if target() is engine and identifier == "before_cursor_execute":
            found = getattr(listener, "__self__", None)
            if isinstance(found, EngineTracer):
                return found
    return None


def _listen_before_engine_tracer(engine: Engine) -> None:
    """Add :func:`_end_failed_statement` ahead of the tracer's own ``handle_error``.

    SQLAlchemy forwards ``handle_error`` listeners to the dialect without ``insert=True``,
    so the order is made by listening again: the tracer's listener goes to the back.
    """
    event.listen(engine, "handle_error", _end_failed_statement)
    for target, identifier, listener in EngineTracer._remove_event_listener_params:
        if target() is engine and identifier == "handle_error":
            event.remove(engine, identifier, listener)
            event.listen(engine, identifier, listener)


def _remove_engine_tracer(engine: Engine) -> None:
    registry = EngineTracer._remove_event_listener_params
    for entry in [entry for entry in registry if entry[0]() is engine]:
        _, identifier, listener = entry
        event.remove(engine, identifier, listener)
        registry.remove(entry)


class _Carrier:
    """Stands in for SQLAlchemy's execution context: the tracer leaves its span here."""

    _otel_span: trace.Span | None = None


class _FastReadSpans:
    """The statement hook of one engine: a statement span around each fast read."""

    __slots__ = ("_engine", "_engine_tracer")

    def __init__(self, engine_tracer: EngineTracer, engine: Engine) -> None:
        self._engine_tracer = engine_tracer
        self._engine = engine

    @contextmanager
    def __call__(self, sql: str) -> Iterator[None]:
        carrier = _Carrier()
        # The tracer's before_cursor_execute listener, called as SQLAlchemy would call it:
        # the same span name and attributes as every other statement of the engine.  The
        # engine stands in for the connection (it has .engine and .url too).
        self._engine_tracer._before_cur_exec(self._engine, None, sql, (), carrier, False)  # type: ignore[no-untyped-call]
        span = carrier._otel_span
        try:
            yield
        except BaseException as exc:
            if span is not None:
                span.set_status(trace.Status(trace.StatusCode.ERROR, _describe(exc)))
            raise
        finally:
            if span is not None:
                span.end()


def _end_failed_statement(context: ExceptionContext) -> None:
    """End a failed statement's span with the typed error instead of the driver's message.

    Runs before the instrumentation's own ``handle_error`` listener (which would copy the
    driver's message, possibly quoting a bound value, into the span) and leaves it
    nothing to do.
    """
    execution = context.execution_context
    span: trace.Span | None = getattr(execution, "_otel_span", None)
    if execution is None or span is None:
        return
    execution._otel_span = None  # type: ignore[attr-defined]
    error = context.sqlalchemy_exception or context.original_exception
    span.set_status(trace.Status(trace.StatusCode.ERROR, _describe(error)))
    span.end()


def _describe(error: BaseException) -> str:
    """The typed error's class and message, which never quote values; else the class."""
    typed = translate_error(error) if isinstance(error, Exception) else error
    if isinstance(typed, DatabaseError):
        return f"{type(typed).__name__}: {typed}"
    return type(typed).__name__


class _UnitSpan:
    """The span of one unit of work, current in the task that entered the unit."""

    __slots__ = ("_span", "_task", "_token")

    def __init__(self, tracer: trace.Tracer, record: UnitRecord) -> None:
        unit = record.unit
        self._span = tracer.start_span(UNIT_SPAN_NAME, kind=trace.SpanKind.INTERNAL)
        if self._span.is_recording():
            self._span.set_attributes(
                {
                    _PREFIX + "id": record.unit_id,
                    _PREFIX + "read_only": unit.read_only,
                    _PREFIX + "attempt": record.attempt,
                }
            )
            if unit.isolation_level is not None:
                self._span.set_attribute(_PREFIX + "isolation_level", unit.isolation_level)
            if unit.client_id is not None:
                self._span.set_attribute("biotech_ma_db.client_id", unit.client_id)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._task = asyncio.current_task()

    def unit_finished(self, record: UnitRecord) -> None:
        span = self._span
        span.set_attribute(_PREFIX + "outcome", record.outcome)
        span.set_attribute(_PREFIX + "duration_ms", round(record.duration * 1000, 3))
        error = record.error
        if error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            span.record_exception(
                error,
                attributes={"exception.stacktrace": _stacktrace(record, error)},
                escaped=True,
            )
        # A unit handed over to another task (a pytest fixture's) ends there; the
        # context it was made current in belongs to the first task, so leave it be.
        if asyncio.current_task() is self._task:
            otel_context.detach(self._token)
        span.end()


def _stacktrace(record: UnitRecord, error: BaseException) -> str:
    """Where the unit failed, and the typed error: not the chained driver messages."""
    frames = traceback.format_list(traceback.extract_tb(record.error_traceback))
    last = traceback.format_exception_only(type(error), error)
    return "Traceback (most recent call last):\n" + "".join(frames) + "".join(last)


class _UnitSpans:
    """The unit-of-work observer: a span for each unit on a traced engine."""

    def unit_started(self, record: UnitRecord) -> _UnitSpan | None:
        if not _traced:  # every traced engine is gone (garbage-collected): stop listening
            unit_events.remove_observer(self)
            return None
        if not is_instrumentation_enabled():
            return None
        bind = record.unit.session.sync_session.bind
        traced = _traced.get(bind.engine) if bind is not None else None
        if traced is None:
            return None
        return _UnitSpan(traced.tracer, record)


_UNIT_SPANS: Final = _UnitSpans()
