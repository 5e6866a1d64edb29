"""``SessionScope``: what ``async with db.session()`` enters and leaves.

A class rather than an ``@asynccontextmanager`` generator: a one-read session (a typical
request) spends a few microseconds less in the context-manager machinery, which at a
pooled read of about 100 µs of client CPU is several per cent.  The behaviour is the
generator's: commit on a clean exit when there is something to commit, roll back on an
error, the library's typed errors out, the session closed and its lease released in
every case.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from biotech_ma_db.engine.options import PLAIN_SESSION_KEY
from biotech_ma_db.engine.read_only import READ_ONLY_KEY
from biotech_ma_db.engine.routing import SessionLease
from biotech_ma_db.engine.transactions import TRANSACTION_INFO_KEY, TransactionSettings
from biotech_ma_db.errors import translate_error
from biotech_ma_db.sa_internals import session_is_clean

__all__ = ["SessionScope"]

logger = logging.getLogger("biotech_ma_db")

_READ_ONLY_SETTINGS: Final = TransactionSettings(read_only=True)


class SessionScope:
    """One ``async with db.session()`` block (see ``ConnectionManager.session``).

    Args:
        sessionmaker: Where a plain session comes from.
        open_read: For a read-only session: leases one (on a replica or the primary) as
            the block is entered; ``None`` for a plain session.
    """

    __slots__ = ("_lease", "_open_read", "_sessionmaker")

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        open_read: Callable[[], Awaitable[SessionLease]] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._open_read = open_read
        self._lease: SessionLease | None = None

    async def __aenter__(self) -> AsyncSession:
        if self._open_read is not None:
            lease = await self._open_read()
        else:
            lease = SessionLease(self._sessionmaker())
        self._lease = lease
        info = lease.session.sync_session.info
        if self._open_read is not None:
            info[READ_ONLY_KEY] = True
            info[TRANSACTION_INFO_KEY] = _READ_ONLY_SETTINGS
        else:
            # Plain session (no per-transaction settings): its first fast read may borrow
            # a pooled connection instead of starting a transaction (repositories/_fast.py).
            info[PLAIN_SESSION_KEY] = True
        return lease.session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        lease = self._lease
        assert lease is not None, "entered before it is left"
        self._lease = None
        session = lease.session
        sync = session.sync_session
        try:
            if exc is None:
                try:
                    # A session that never began a transaction and holds no changes has
                    # nothing to commit; skipping the empty commit saves its bookkeeping.
                    if sync.in_transaction() or not session_is_clean(sync):
                        await session.commit()
                except BaseException as failure:
                    await _rollback_quietly(session)
                    translated = translate_error(failure)
                    if translated is failure:
                        raise
                    raise translated from failure
                return False
            await _rollback_quietly(session)
            translated = translate_error(exc)
            if translated is not exc:
                raise translated from exc
            return False  # already the library's own error (or a cancellation): goes on
        finally:
            try:
                if sync.get_transaction() is None:
                    # No transaction, so no connection to give back: closing only forgets
                    # the objects, no I/O, and needs no task of its own.
                    sync.close()
                else:
                    # Holding a connection (e.g. cancelled mid-commit): SQLAlchemy's own
                    # exit, which finishes the close even if this task is cancelled.
                    await session.__aexit__(None, None, None)
            finally:
                if lease.connection is not None:
                    await lease.release()


async def _rollback_quietly(session: AsyncSession) -> None:
    """Roll back without letting a failure here hide the error that got us here."""
    try:
        await session.rollback()
    except Exception:
        logger.warning("rollback after an error failed as well", exc_info=True)
