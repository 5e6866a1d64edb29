"""What every command shares: the console, failing with an exit code, running async code.

Commands are small synchronous functions that validate their arguments and hand over to
one ``async`` helper through :func:`run`, which turns the library's errors into a
one-line ``error: ...`` on stderr and a non-zero exit code: :data:`EXIT_FAILURE` when
something failed, :data:`EXIT_USAGE` for a bad argument.  Tracebacks are shown only with
``BIOTECH_MA_DB_DEBUG=1``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sys
import warnings
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from biotech_ma_db import embedded
from biotech_ma_db.errors import DatabaseError, translate_error

__all__ = [
    "DEBUG_ENV",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "DataDirOption",
    "JsonOption",
    "TodayOption",
    "UrlOption",
    "console",
    "fail",
    "parse_amount",
    "parse_date",
    "run",
    "utc_today",
]

T = TypeVar("T")

DEBUG_ENV = "BIOTECH_MA_DB_DEBUG"
"""Set to any value to see tracebacks instead of one-line errors."""

EXIT_FAILURE = 1
"""Exit code when something failed."""

EXIT_USAGE = 2
"""Exit code for a bad argument (the same as Click's usage errors)."""

_NON_TTY_WIDTH = 120

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="DATABASE_URL",
        help="PostgreSQL URL of the target database. Default: the embedded server.",
        show_default=False,
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar=embedded.DATA_DIR_ENV,
        help="Data folder of the embedded PostgreSQL.",
        show_default="~/.local/share/biotech-ma-db/postgres",
        file_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TodayOption = Annotated[
    str | None,
    typer.Option(help="Anchor date of the data, YYYY-MM-DD.", show_default="today, UTC"),
]


def console() -> Console:
    """A stdout console that keeps tables readable when piped (not a terminal)."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else _NON_TTY_WIDTH
    return Console(file=sys.stdout, width=width, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    one_line = " ".join(message.split())
    typer.echo(f"error: {one_line}", err=True)
    raise typer.Exit(code)


_HINTS = {
    "42P01": "the schema is missing: run `biotech-ma-db migrate upgrade` first",
    "3D000": "the database does not exist",
    "28P01": "authentication failed",
    "28000": "the server refused the role or host",
}


def _describe_error(exc: BaseException) -> str:
    translated = translate_error(exc)
    message = str(translated) or type(translated).__name__
    hint = _HINTS.get(getattr(translated, "sqlstate", None) or "")
    return f"{message} ({hint})" if hint else message


def run(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one command's async helper; errors become ``error: ...`` and exit code 1.

    Args:
        make_coro: Builds the coroutine (a lambda over the command's arguments).

    Returns:
        What the coroutine returned.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs complains about XDG_RUNTIME_DIR each time the wheel is used.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            return asyncio.run(make_coro())
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except (DatabaseError, SQLAlchemyError, ValueError, OSError) as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        fail(_describe_error(exc))
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)")


_AMOUNT = re.compile(r"^\$?\s*(\d+(?:\.\d+)?)\s*([kmbt]?)$", re.IGNORECASE)
_MULTIPLIERS = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_amount(option: str, raw: str | None) -> Decimal | None:
    """``"500M"``, ``"1.5B"``, ``"$2b"`` or ``"250000000"`` as dollars; bad input exits 2."""
    if raw is None:
        return None
    match = _AMOUNT.match(raw.strip().replace(",", "").replace("_", ""))
    if match is None:
        fail(f"{option} must be an amount such as 500M or 1.5B (got {raw!r})", EXIT_USAGE)
    number, suffix = match.groups()
    return Decimal(number) * Decimal(str(_MULTIPLIERS[suffix.lower()]))


def parse_date(option: str, raw: str | None) -> dt.date | None:
    """``YYYY-MM-DD`` as a date; bad input exits 2 naming ``option``."""
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        fail(f"{option} must be a date as YYYY-MM-DD (got {raw!r})", EXIT_USAGE)


def utc_today() -> dt.date:
    """Today's date in UTC (the default anchor of a dataset)."""
    return dt.datetime.now(dt.UTC).date()
