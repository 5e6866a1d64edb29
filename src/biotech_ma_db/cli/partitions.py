"""``partitions ensure|detach|list``: the month partitions of ``signals``.

``ensure`` belongs in a daily job (idempotent; several at once are safe), ``detach`` in the
retention job.  They change the schema, so run them as the role that owns the tables (the
migration role), with ``--url`` like every command that connects.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from biotech_ma_db import partitions
from biotech_ma_db.cli._app import app
from biotech_ma_db.cli._common import (
    EXIT_USAGE,
    DataDirOption,
    JsonOption,
    UrlOption,
    console,
    fail,
    parse_date,
    run,
)
from biotech_ma_db.cli._render import print_json
from biotech_ma_db.cli._target import open_database, resolve

__all__ = ["partitions_app", "partitions_detach", "partitions_ensure", "partitions_list"]

partitions_app = typer.Typer(
    help="Month partitions of signals: create them ahead, list them, detach old ones.",
    no_args_is_help=True,
)
"""``biotech-ma-db partitions ...``."""

app.add_typer(partitions_app, name="partitions")

TableOption = Annotated[str, typer.Option("--table", help="The partitioned table.")]


def _month(moment: dt.datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d}"


async def _ensure(
    url: str | None, data_dir: Path | None, months_ahead: int, table: str
) -> partitions.EnsureResult:
    target = await resolve(url, data_dir)
    async with open_database(target) as db:
        return await partitions.ensure_partitions(db, months_ahead=months_ahead, table=table)


@partitions_app.command("ensure")
def partitions_ensure(
    months_ahead: Annotated[
        int,
        typer.Option(
            "--months-ahead",
            help=f"Months past the current one to cover (0 to {partitions.MAX_MONTHS_AHEAD}).",
        ),
    ] = partitions.DEFAULT_MONTHS_AHEAD,
    table: TableOption = "signals",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create the partitions of this month and the next ones (idempotent).

    Rows of those months already in the DEFAULT partition are moved into them.
    """
    if not 0 <= months_ahead <= partitions.MAX_MONTHS_AHEAD:
        fail(
            f"--months-ahead must be between 0 and {partitions.MAX_MONTHS_AHEAD} "
            f"(got {months_ahead})",
            EXIT_USAGE,
        )
    result = run(lambda: _ensure(url, data_dir, months_ahead, table))
    if as_json:
        print_json(dataclasses.asdict(result))
    elif result.created:
        moved = f" (moved {result.moved_rows} rows out of DEFAULT)" if result.moved_rows else ""
        typer.echo(f"created {', '.join(result.created)}{moved}")
    else:
        typer.echo(
            f"nothing to create: {table} has a partition for this month and the "
            f"{months_ahead} after it"
        )


async def _detach(
    url: str | None, data_dir: Path | None, older_than: dt.date, drop: bool, table: str
) -> list[str]:
    target = await resolve(url, data_dir)
    async with open_database(target) as db:
        return await partitions.detach_partitions(db, older_than=older_than, drop=drop, table=table)


@partitions_app.command("detach")
def partitions_detach(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Detach the months that end on or before this date, YYYY-MM-DD.",
            show_default=False,
        ),
    ],
    drop: Annotated[bool, typer.Option("--drop", help="Drop them once detached.")] = False,
    table: TableOption = "signals",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Detach (retention) the month partitions older than a date; DEFAULT stays.

    Detached months become standalone tables of the same name, unless --drop.
    """
    cutoff = parse_date("--older-than", older_than)
    assert cutoff is not None
    if cutoff > dt.datetime.now(dt.UTC).date():
        fail(f"--older-than must not be in the future (got {older_than})", EXIT_USAGE)
    detached = run(lambda: _detach(url, data_dir, cutoff, drop, table))
    if as_json:
        print_json({"detached": detached, "dropped": drop})
    elif detached:
        typer.echo(f"{'dropped' if drop else 'detached'} {', '.join(detached)}")
    else:
        typer.echo(f"nothing to detach: no month of {table} ends on or before {cutoff}")


async def _list(url: str | None, data_dir: Path | None, table: str) -> list[partitions.Partition]:
    target = await resolve(url, data_dir)
    async with open_database(target) as db:
        return await partitions.list_partitions(db, table=table)


@partitions_app.command("list")
def partitions_list(
    table: TableOption = "signals",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the partitions with their ranges (UTC) and estimated row counts."""
    found = run(lambda: _list(url, data_dir, table))
    if as_json:
        print_json([dataclasses.asdict(partition) for partition in found])
        return
    view = Table(title=f"Partitions of {table}", title_justify="left")
    view.add_column("Partition", style="bold cyan")
    view.add_column("From")
    view.add_column("To (excluded)")
    view.add_column("Rows (estimate)", justify="right")
    for partition in found:
        note = " (detach pending)" if partition.detach_pending else ""
        start = "DEFAULT" if partition.is_default else _month(partition.lower)
        view.add_row(
            partition.name + note, start, _month(partition.upper), str(partition.estimated_rows)
        )
    console().print(view)
