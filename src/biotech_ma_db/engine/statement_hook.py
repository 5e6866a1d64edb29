"""A hook on the statements the fast read path sends to asyncpg itself.

The repositories' fast read path (:mod:`biotech_ma_db.repositories._fast`) runs its
SELECTs on the asyncpg connection directly, so SQLAlchemy's cursor events, and every
instrumentation built on them, never see those statements.  An engine whose execution
options carry a :class:`StatementHook` under :data:`STATEMENT_HOOK_OPTION` has the hook
wrapped around each such statement instead (:mod:`biotech_ma_db.tracing` opens a span
there).  Without the option the fast path pays one dictionary lookup.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Final, Protocol

__all__ = ["STATEMENT_HOOK_OPTION", "StatementHook"]

STATEMENT_HOOK_OPTION: Final = "biotech_ma_db.statement_hook"
"""Engine execution option: the :class:`StatementHook` of the fast read path (default none)."""


class StatementHook(Protocol):
    """Wraps one statement that the fast read path sends to asyncpg."""

    def __call__(self, sql: str) -> AbstractContextManager[object]:
        """A context manager entered just before ``sql`` is sent and left once it returned.

        Args:
            sql: The statement text, with ``$n`` placeholders: never the bound values.
        """
        ...
