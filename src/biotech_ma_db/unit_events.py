"""What a unit of work tells the world: its observers at start and end, and one log record.

:class:`~biotech_ma_db.unit_of_work.UnitOfWork` calls :func:`watch` as it enters and
:meth:`UnitRecord.finish` as it leaves.  With nobody listening (no observer added and
DEBUG off for the ``biotech_ma_db.unit_of_work`` logger) that is one check and no object.
Otherwise the unit gets a :class:`UnitRecord`:

- an id, the attempt of :func:`~biotech_ma_db.retry.run_in_transaction` it is (1 outside
  one), its duration and its outcome: ``"committed"`` when its last ``commit()``
  succeeded and nothing was rolled back after it, ``"rolled_back"`` otherwise, or the
  class name of the library error it ended with;
- one DEBUG record on ``biotech_ma_db.unit_of_work`` whose structured fields (logging's
  ``extra``: ``unit_id``, ``client_id``, ``read_only``, ``attempt``, ``duration_ms``,
  ``outcome``) a JSON formatter emits (:class:`biotech_ma_db.json_logs.JsonLogFormatter`);
- a call of each observer's :meth:`UnitObserver.unit_started`, and of the
  :class:`UnitWatch` it returned when the unit ends (:mod:`biotech_ma_db.tracing` opens
  and closes a span there).

Nothing here carries statement parameters: observers see the unit, not its SQL.
"""

from __future__ import annotations

import logging
import random
import time
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol

from biotech_ma_db.errors import translate_error

if TYPE_CHECKING:
    from biotech_ma_db.unit_of_work import UnitOfWork

__all__ = [
    "ATTEMPT",
    "UnitObserver",
    "UnitRecord",
    "UnitWatch",
    "add_observer",
    "remove_observer",
    "watch",
]

logger = logging.getLogger("biotech_ma_db.unit_of_work")

ATTEMPT: Final[ContextVar[int]] = ContextVar("biotech_ma_db.attempt", default=1)
"""The attempt of ``run_in_transaction`` the current code runs in (it sets it on retries)."""

# Unit ids only tell units apart in logs and traces; they need no cryptographic quality.
_ids = random.Random()  # noqa: S311


class UnitWatch(Protocol):
    """What an observer keeps for one unit of work (a span, say) until it ends."""

    def unit_finished(self, record: UnitRecord) -> None:
        """The unit has ended: ``record.outcome``, ``record.duration`` and ``record.error``."""


class UnitObserver(Protocol):
    """Told about every unit of work that starts (see :func:`add_observer`)."""

    def unit_started(self, record: UnitRecord) -> UnitWatch | None:
        """The unit ``record.unit`` has entered; return what to tell when it ends, or None."""


_observers: tuple[UnitObserver, ...] = ()


def add_observer(observer: UnitObserver) -> None:
    """Tell ``observer`` about every unit of work from now on (once, however often added)."""
    global _observers  # noqa: PLW0603 — a tuple swapped whole: readers never see it half-built
    if observer not in _observers:
        _observers = (*_observers, observer)


def remove_observer(observer: UnitObserver) -> None:
    """Stop telling ``observer``; a no-op if it was not added."""
    global _observers  # noqa: PLW0603
    _observers = tuple(known for known in _observers if known is not observer)


def watch(unit: UnitOfWork) -> UnitRecord | None:
    """The record of a unit that is entering, or None when nobody would hear of it."""
    observers = _observers
    if not observers and not logger.isEnabledFor(logging.DEBUG):
        return None
    return UnitRecord(unit, observers)


class UnitRecord:
    """One watched unit of work, from its start to its outcome.

    Attributes:
        unit: The unit of work.
        unit_id: 16 hex digits naming this run of the unit in logs and spans.
        attempt: Its attempt of ``run_in_transaction`` (1 for the first, or outside one).
        committed: Whether its last ``commit()`` succeeded with no rollback after it.
        outcome: ``"committed"``, ``"rolled_back"`` or the error's class name (at the end).
        duration: Seconds from entering to leaving (at the end).
        error: The library's typed error it ended with (what the caller sees), or None.
        error_traceback: Where that error was raised (the driver error's frames).
    """

    __slots__ = (
        "_started",
        "_watches",
        "attempt",
        "committed",
        "duration",
        "error",
        "error_traceback",
        "outcome",
        "unit",
        "unit_id",
    )

    def __init__(self, unit: UnitOfWork, observers: tuple[UnitObserver, ...]) -> None:
        self.unit = unit
        self.unit_id = f"{_ids.getrandbits(64):016x}"
        self.attempt = ATTEMPT.get()
        self.committed = False
        self.outcome = ""
        self.duration = 0.0
        self.error: BaseException | None = None
        self.error_traceback: TracebackType | None = None
        self._started = time.perf_counter()
        self._watches: list[UnitWatch] = []
        for observer in observers:
            try:
                found = observer.unit_started(self)
            except Exception:
                # Observing must never break the work it observes.
                logger.warning("unit-of-work observer %r failed", observer, exc_info=True)
                continue
            if found is not None:
                self._watches.append(found)

    def finish(self, error: BaseException | None) -> None:
        """The unit has left its block, cleanly or with ``error``: log it, tell the watches."""
        self.duration = time.perf_counter() - self._started
        if error is not None:
            self.error_traceback = error.__traceback__
            self.error = translate_error(error) if isinstance(error, Exception) else error
            self.outcome = type(self.error).__name__
        else:
            self.outcome = "committed" if self.committed else "rolled_back"
        if logger.isEnabledFor(logging.DEBUG):
            # Logged before the watches end their spans, so trace-aware log handlers
            # still see this unit's span as the current one.
            unit = self.unit
            logger.debug(
                "unit of work %s %s in %.1f ms (attempt %d)",
                self.unit_id,
                self.outcome,
                self.duration * 1000,
                self.attempt,
                extra={
                    "unit_id": self.unit_id,
                    "client_id": unit.client_id,
                    "read_only": unit.read_only,
                    "attempt": self.attempt,
                    "duration_ms": round(self.duration * 1000, 3),
                    "outcome": self.outcome,
                },
            )
        for found in self._watches:
            try:
                found.unit_finished(self)
            except Exception:
                logger.warning("unit-of-work observer %r failed", found, exc_info=True)
