"""``migrate upgrade|downgrade|current|history``: the migrations API on the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from biotech_ma_db import migrations
from biotech_ma_db.cli._app import migrate_app
from biotech_ma_db.cli._common import DataDirOption, UrlOption, console, run
from biotech_ma_db.cli._target import resolve
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["migrate_current", "migrate_downgrade", "migrate_history", "migrate_upgrade"]


async def _migrate(url: str | None, data_dir: Path | None, action: str, revision: str) -> str:
    target = await resolve(url, data_dir)
    # An explicit URL gets the TLS options of the settings (DB_SSL_MODE, DB_SSL_ROOT_CERT).
    ssl_option = DatabaseSettings().ssl_context() if target.server is None else None
    tls = {"ssl": ssl_option} if ssl_option is not None else None
    if action == "upgrade":
        await asyncio.to_thread(lambda: migrations.upgrade(target.url, revision, connect_args=tls))
    elif action == "downgrade":
        await asyncio.to_thread(
            lambda: migrations.downgrade(target.url, revision, connect_args=tls)
        )
    current = await asyncio.to_thread(lambda: migrations.current(target.url, connect_args=tls))
    return current or "base (no schema)"


@migrate_app.command("upgrade")
def migrate_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    typer.echo(f"at revision {run(lambda: _migrate(url, data_dir, 'upgrade', revision))}")


@migrate_app.command("downgrade")
def migrate_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' removes all.")],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Downgrade the schema to REVISION ('base' drops every table)."""
    typer.echo(f"at revision {run(lambda: _migrate(url, data_dir, 'downgrade', revision))}")


@migrate_app.command("current")
def migrate_current(url: UrlOption = None, data_dir: DataDirOption = None) -> None:
    """Print the revision the database is at."""
    typer.echo(run(lambda: _migrate(url, data_dir, "current", "")))


async def _history() -> list[tuple[str, str]]:
    return migrations.history()


@migrate_app.command("history")
def migrate_history() -> None:
    """List the migration revisions, oldest first (no database needed)."""
    revisions = run(_history)
    head = set(migrations.heads())
    table = Table(title="Migrations", title_justify="left")
    table.add_column("Revision", style="bold cyan")
    table.add_column("Description")
    for revision, description in revisions:
        table.add_row(revision + (" (head)" if revision in head else ""), description)
    console().print(table)
