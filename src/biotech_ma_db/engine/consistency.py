"""Read-your-writes: a consistency token is a WAL position a replica must have replayed.

After a commit on the primary, ``pg_current_wal_insert_lsn()`` is at or past the end of
the commit's WAL record (the insert position, not the write position: with
``synchronous_commit=off`` the commit record may not be written out yet when ``COMMIT``
returns).  A standby whose ``pg_last_wal_replay_lsn()`` has reached that position shows
the commit, so a read given the token may run there; otherwise it waits, then runs on
the primary.  Tokens are plain WAL positions and survive a trip through text
(``str(token)`` / :meth:`ConsistencyToken.parse`), e.g. in a cookie between requests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final, Self

from sqlalchemy.ext.asyncio import AsyncEngine

from biotech_ma_db.errors import ValidationError, translate_error

__all__ = ["PRIMARY_ONLY", "ConsistencyToken", "current_token", "format_lsn", "parse_lsn"]

logger = logging.getLogger("biotech_ma_db.replicas")

_MAX_LSN: Final = 2**64 - 1
_CURRENT_LSN_SQL: Final = (
    "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_insert_lsn() END)::text"
)


def parse_lsn(text: str) -> int:
    """A WAL position ``'16/B374D848'`` as an integer.

    Raises:
        ValueError: ``text`` is not two hexadecimal halves separated by ``/``.
    """
    high, sep, low = text.strip().partition("/")
    if not sep or not 0 < len(high) <= 8 or not 0 < len(low) <= 8:
        raise ValueError("a WAL position looks like '16/B374D848'")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    """An integer WAL position in PostgreSQL's ``pg_lsn`` notation."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass(frozen=True, slots=True, order=True)
class ConsistencyToken:
    """A WAL position on the primary that a replica must have replayed to serve a read.

    Get one from ``uow.consistency_token`` after ``commit()`` or from
    ``await db.consistency_token()``, and pass it as ``consistency=`` to a read-only
    session or unit of work.

    Attributes:
        lsn: The WAL position as an integer (``str(token)`` gives ``'16/B374D848'``).
    """

    lsn: int

    @classmethod
    def parse(cls, text: str) -> Self:
        """The token whose ``str()`` is ``text``.

        Raises:
            ValidationError: ``text`` is not a WAL position.
        """
        try:
            return cls(parse_lsn(text))
        except ValueError:
            raise ValidationError(
                "consistency", "expected a WAL position like '16/B374D848'"
            ) from None

    @property
    def primary_only(self) -> bool:
        """True for :data:`PRIMARY_ONLY`: no replica can serve this read."""
        return self.lsn >= _MAX_LSN

    def __str__(self) -> str:
        return format_lsn(self.lsn)


PRIMARY_ONLY: Final = ConsistencyToken(_MAX_LSN)
"""The token of a commit whose WAL position could not be read: reads go to the primary."""


async def current_token(engine: AsyncEngine) -> ConsistencyToken:
    """The primary's WAL insert position now: a token covering every commit made so far.

    Never raises for a database error: when the position cannot be read (the connection
    failed just after the commit), the answer is :data:`PRIMARY_ONLY`, which sends the
    reads that carry it to the primary, so read-your-writes still holds.
    """
    try:
        async with engine.connect() as conn:
            # Straight to the driver: one round trip, no BEGIN/ROLLBACK around it.
            driver: Any = (await conn.get_raw_connection()).driver_connection
            text = await driver.fetchval(_CURRENT_LSN_SQL)
    except Exception as exc:  # noqa: BLE001 — degrade to the primary, never fail a commit
        logger.warning(
            "could not read the WAL position for a consistency token (%s); "
            "reads with this token go to the primary",
            translate_error(exc),
        )
        return PRIMARY_ONLY
    return ConsistencyToken(parse_lsn(str(text))) if text is not None else PRIMARY_ONLY
