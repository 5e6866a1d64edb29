"""Bounded retries of a whole unit of work on transient errors.

:func:`run_in_transaction` (``Database.run_in_transaction``) is the retry loop: it runs a
function in a fresh unit of work, commits, and re-runs the whole unit on the transient
errors of :func:`~biotech_ma_db.errors.is_transient`, with exponential backoff and full
jitter, bounded by a number of attempts and a deadline::

    async def deactivate(uow: UnitOfWork) -> None:
        await uow.alerts.update(alert_id, is_active=False)

    await db.run_in_transaction(deactivate, isolation_level="SERIALIZABLE", idempotent=True)
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from biotech_ma_db.errors import CommitOutcomeUnknownError, TransientDatabaseError, translate_error
from biotech_ma_db.unit_events import ATTEMPT

__all__ = ["RetryEvent", "run_in_transaction"]

retry_logger = logging.getLogger("biotech_ma_db.retry")

ResultT = TypeVar("ResultT")
UnitT = TypeVar("UnitT", bound="Committable")


class Committable(Protocol):
    """What :func:`run_in_transaction` needs of a unit of work: an explicit commit."""

    async def commit(self) -> None:
        """Commit the unit's transaction."""


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One failed attempt of :func:`run_in_transaction` that will be retried.

    Attributes:
        attempt: Number of the attempt that failed (1 for the first).
        error: The typed error it failed with (its ``__cause__`` is the driver's).
        delay: Seconds slept before the next attempt.
    """

    attempt: int
    error: BaseException
    delay: float


# Jitter only spreads retries out; it needs no cryptographic quality.
_jitter = random.Random()  # noqa: S311


async def run_in_transaction(
    new_unit: Callable[[], AbstractAsyncContextManager[UnitT]],
    fn: Callable[[UnitT], Awaitable[ResultT]],
    *,
    attempts: int = 4,
    deadline: float | None = 30.0,
    idempotent: bool = False,
    retry_on: tuple[type[BaseException], ...] = (),
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    on_retry: Callable[[RetryEvent], object] | None = None,
) -> ResultT:
    """Run ``fn(uow)`` in a new unit of work and commit; re-run it on transient errors.

    The whole unit is the retry unit (SQLAlchemy cannot resume a transaction on a new
    connection): ``fn`` runs again from the start in a fresh unit of work, so it must not
    have effects outside the database that cannot be repeated.  ``fn`` should not commit;
    this function commits after it returns.

    Retried: every error :func:`~biotech_ma_db.errors.is_transient` accepts (40001,
    40P01, 08xxx, 57P01-57P03, socket errors, asyncpg connection errors, cached statements
    invalidated by DDL), plus ``retry_on``.  A lost connection while ``COMMIT`` was in
    flight (:class:`~biotech_ma_db.errors.CommitOutcomeUnknownError`) is retried only when
    ``idempotent`` is true.  Timeouts, constraint violations and cancellation never are.

    Between attempts it sleeps a random time between 0 and
    ``min(max_delay, base_delay * 2 ** (attempt - 1))`` ("full jitter").

    Args:
        new_unit: Builds the unit of work for one attempt (``db.unit_of_work(...)``).
        fn: The work; its return value is returned.
        attempts: At most this many runs (>= 1).
        deadline: No new attempt starts more than this many seconds after the call
            (``None``: only ``attempts`` bounds it).  A running attempt is bounded by the
            connection's timeouts, not by this.
        idempotent: ``fn`` may safely run twice even if the first run was committed
            (e.g. it writes with an idempotency key): also retry after an unknown commit.
        retry_on: More exception types to treat as transient (e.g.
            :class:`~biotech_ma_db.errors.ConcurrencyError` for optimistic locking).
        base_delay: Backoff of the first retry, in seconds.
        max_delay: Cap of the backoff, in seconds.
        on_retry: Called with a :class:`RetryEvent` before each retry (metrics, tests).

    Returns:
        What ``fn`` returned in the attempt that committed.

    Raises:
        The typed error of the last attempt (e.g. ``DatabaseUnavailableError`` or
        ``SerializationFailureError``) once attempts or the deadline run out, with a
        note saying how many attempts were made; any non-transient error at once.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    give_up_at = None if deadline is None else started + deadline
    attempt = 0
    while True:
        attempt += 1
        # Units of work read their attempt from ATTEMPT (logs, spans); its default is 1,
        # so a first attempt outside any other run_in_transaction sets nothing.
        attempt_token = ATTEMPT.set(attempt) if attempt > 1 or ATTEMPT.get() != 1 else None
        try:
            async with new_unit() as uow:
                result = await fn(uow)
                await uow.commit()
        except Exception as exc:
            error = translate_error(exc)
            retryable = (
                isinstance(error, (TransientDatabaseError, *retry_on))
                or isinstance(exc, retry_on)
                or (idempotent and isinstance(error, CommitOutcomeUnknownError))
            )
            if not retryable:
                if error is exc:
                    raise
                raise error from exc
            delay = _jitter.uniform(0.0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            now = loop.time()
            if give_up_at is not None:
                # The last attempt starts at the deadline at the latest, never after it.
                delay = min(delay, give_up_at - now)
            if attempt >= attempts or delay < 0:
                elapsed = now - started
                error.add_note(
                    f"run_in_transaction gave up after {attempt} attempts in {elapsed:.1f} s"
                )
                if error is exc:
                    raise
                raise error from exc
            sqlstate = getattr(error, "sqlstate", None)
            retry_logger.info(
                "retrying unit of work after %s%s (attempt %d of %d, next in %.3f s)",
                type(error).__name__,
                f" [SQLSTATE {sqlstate}]" if sqlstate else "",
                attempt,
                attempts,
                delay,
                extra={
                    "attempt": attempt,
                    "attempts": attempts,
                    "delay_ms": round(delay * 1000, 3),
                    "outcome": type(error).__name__,
                    "sqlstate": sqlstate,
                },
            )
            if on_retry is not None:
                on_retry(RetryEvent(attempt=attempt, error=error, delay=delay))
            await asyncio.sleep(delay)
        else:
            return result
        finally:
            if attempt_token is not None:
                ATTEMPT.reset(attempt_token)
