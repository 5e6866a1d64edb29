"""Read routing: which server a read-only session runs on.

Round-robin over the replicas in rotation; the primary when none can take the read.  A
replica is passed over when:

- checking out a connection fails (it is taken out of rotation; the caller sees nothing,
  as no statement of theirs ran yet; connection errors at checkout are the only ones
  routed around, a statement that ran is never re-run);
- it lags more than ``DB_MAX_REPLICA_LAG_S`` behind;
- the read carries a :class:`~biotech_ma_db.engine.consistency.ConsistencyToken` the
  replica has not replayed yet, and none catches up within the wait.

The checked-out connection is what the session is bound to, so the server that answered
the checks is the one that runs the session's statements.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from biotech_ma_db.engine.consistency import ConsistencyToken
from biotech_ma_db.engine.replicas import Replica
from biotech_ma_db.engine.status import ReplicaStatus
from biotech_ma_db.errors import PoolExhaustedError, translate_error

__all__ = ["ReplicaRouter", "SessionLease"]

_FIRST_POLL_S: Final = 0.005
_MAX_POLL_S: Final = 0.05


class _Verdict(enum.Enum):
    USE = "use"
    BEHIND = "behind"  # has not replayed the token's position yet
    SKIP = "skip"  # lags too much, or failed (then out of rotation)


@dataclass(frozen=True, slots=True)
class SessionLease:
    """A session for a read, and the connection it is bound to when on a replica.

    Attributes:
        session: The session (bound to ``connection`` on a replica, to the primary's
            engine otherwise).
        replica: The replica it runs on, ``None`` for the primary.
        connection: The replica connection, given back by :meth:`release`.
    """

    session: AsyncSession
    replica: Replica | None = None
    connection: AsyncConnection | None = None

    async def release(self) -> None:
        """Give the replica connection back to its pool (after the session is closed).

        Idempotent: a second call does nothing.
        """
        if self.connection is not None and not self.connection.closed:
            # SQLAlchemy's own exit: finishes even if this task is being cancelled.
            await self.connection.__aexit__(None, None, None)


@dataclass(frozen=True, slots=True)
class _Candidate:
    replica: Replica
    connection: AsyncConnection


class ReplicaRouter:
    """The replicas of one primary and the round-robin over them.

    Args:
        replicas: The replicas, in ``DB_READ_REPLICA_URLS`` order.
        max_lag_s: ``DB_MAX_REPLICA_LAG_S``: pass over a replica further behind.
    """

    def __init__(self, replicas: Sequence[Replica], *, max_lag_s: float | None) -> None:
        self.replicas: tuple[Replica, ...] = tuple(replicas)
        self.max_lag_s = max_lag_s
        self._turn = itertools.count()

    def __bool__(self) -> bool:
        return bool(self.replicas)

    def __len__(self) -> int:
        return len(self.replicas)

    async def lease(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        token: ConsistencyToken | None,
        wait_s: float,
    ) -> SessionLease:
        """A session on a replica that can take the read, else on the primary."""
        chosen = await self.checkout(token, wait_s)
        if chosen is None:
            return SessionLease(sessionmaker())
        return SessionLease(sessionmaker(bind=chosen.connection), chosen.replica, chosen.connection)

    async def checkout(self, token: ConsistencyToken | None, wait_s: float) -> _Candidate | None:
        """A connection of a replica that can take the read, or ``None`` for the primary.

        With a ``token``, a replica that has not replayed it yet is kept (connection
        held) while the others are tried; if none has, they are polled until one has or
        ``wait_s`` seconds have passed.
        """
        if not self.replicas or (token is not None and token.primary_only):
            return None
        deadline = time.monotonic() + wait_s
        held: list[_Candidate] = []  # checked out and not handed over: closed on the way out
        try:
            for replica in self._in_turn():
                connection = await _connect(replica)
                if connection is None:
                    continue
                candidate = _Candidate(replica, connection)
                held.append(candidate)
                verdict = await self._judge(candidate, token)
                if verdict is _Verdict.USE:
                    held.remove(candidate)
                    return candidate
                if verdict is _Verdict.SKIP or wait_s <= 0:
                    held.remove(candidate)
                    await _close(candidate)
            return await self._wait(held, token, deadline)
        finally:
            for candidate in held:
                await _close(candidate)

    async def probe_all(self, primary_lsn: int | None) -> tuple[ReplicaStatus, ...]:
        """Probe every replica at once (``health()``, start-up); updates their rotation."""
        return tuple(
            await asyncio.gather(*(replica.probe(primary_lsn) for replica in self.replicas))
        )

    def statuses(self) -> tuple[ReplicaStatus, ...]:
        """Every replica's state as last seen, without any I/O."""
        return tuple(replica.status() for replica in self.replicas)

    async def dispose(self) -> None:
        """Close every replica's pooled connections."""
        for replica in self.replicas:
            await replica.dispose()

    def _in_turn(self) -> list[Replica]:
        """The replicas a read may try now, starting at the next one in turn."""
        start = next(self._turn) % len(self.replicas)
        order = self.replicas[start:] + self.replicas[:start]
        now = time.monotonic()
        return [replica for replica in order if replica.claim(now)]

    async def _judge(self, candidate: _Candidate, token: ConsistencyToken | None) -> _Verdict:
        if token is None and self.max_lag_s is None:
            return _Verdict.USE  # nothing to check: no extra round trip
        replica = candidate.replica
        try:
            where = await replica.position(candidate.connection)
        except Exception as exc:  # noqa: BLE001 — before any statement of the caller's
            replica.mark_down(exc)
            await candidate.connection.invalidate()
            return _Verdict.SKIP
        if (
            self.max_lag_s is not None
            and where.lag_seconds is not None
            and where.lag_seconds > self.max_lag_s
        ):
            return _Verdict.SKIP
        if token is not None and (where.lsn is None or where.lsn < token.lsn):
            return _Verdict.BEHIND
        return _Verdict.USE

    async def _wait(
        self, behind: list[_Candidate], token: ConsistencyToken | None, deadline: float
    ) -> _Candidate | None:
        """Poll the replicas in ``behind`` until one replays ``token`` or ``deadline``."""
        delay = _FIRST_POLL_S
        while behind and (remaining := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_POLL_S)
            for candidate in list(behind):
                verdict = await self._judge(candidate, token)
                if verdict is _Verdict.BEHIND:
                    continue
                behind.remove(candidate)
                if verdict is _Verdict.USE:
                    return candidate
                await _close(candidate)
        return None


async def _connect(replica: Replica) -> AsyncConnection | None:
    """A checked-out (and pre-pinged) connection, or ``None`` after marking the failure."""
    try:
        connection = await replica.engine.connect()
    except Exception as exc:  # noqa: BLE001 — route around it; the caller ran nothing yet
        if isinstance(translate_error(exc), PoolExhaustedError):
            return None  # busy, not down: stays in rotation
        replica.mark_down(exc)
        return None
    replica.mark_up()  # answers (again)
    return connection


async def _close(candidate: _Candidate) -> None:
    await candidate.connection.__aexit__(None, None, None)
