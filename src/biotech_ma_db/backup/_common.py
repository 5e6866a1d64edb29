"""What the backup modules share: their errors and the progress events they report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from biotech_ma_db.errors import DatabaseError, translate_error

__all__ = [
    "BackupError",
    "CorruptBackupError",
    "Phase",
    "Progress",
    "ProgressCallback",
    "ignore_progress",
    "typed_errors",
]


class BackupError(DatabaseError):
    """A backup could not be made, or a dump could not be restored or checked."""


class CorruptBackupError(BackupError):
    """The dump does not match its manifest (size or sha256), or the manifest is unreadable.

    Raised before anything is created on the server.
    """


Phase = Literal["counting", "dumping", "checking", "restoring", "comparing"]
"""What a backup or restore is doing; each phase counts in its own unit:

``counting`` and ``comparing`` in tables, ``dumping`` and ``restoring`` in rows (from the
snapshot's counts or the manifest's), ``checking`` (the dump's sha256) in bytes.
"""


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report.

    Each phase starts with a report of ``done == 0`` and ends with ``done == total``.

    Attributes:
        phase: What is being done.
        done: Units done so far.
        total: Units in the whole phase.
        table: The table being worked on, when there is one.
    """

    phase: Phase
    done: int
    total: int
    table: str | None = None


ProgressCallback = Callable[[Progress], None]
"""Called with each :class:`Progress`, on the event loop's thread."""


def ignore_progress(_event: Progress) -> None:
    """The callback used when the caller gives none."""


@contextmanager
def typed_errors() -> Iterator[None]:
    """Re-raise SQLAlchemy's and the driver's errors as the library's typed ones."""
    try:
        yield
    except SQLAlchemyError as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc
