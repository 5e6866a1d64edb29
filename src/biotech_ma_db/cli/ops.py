"""``health``, ``pool-status`` and ``check-schema``: is the database up, and as it should be."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import text

from biotech_ma_db import migrations
from biotech_ma_db.cli._app import app
from biotech_ma_db.cli._common import DataDirOption, JsonOption, UrlOption, console, fail, run
from biotech_ma_db.cli._render import health_table, print_json, replica_line
from biotech_ma_db.cli._target import open_database, resolve

__all__ = ["check_schema", "health", "pool_status"]


async def _health(url: str | None, data_dir: Path | None, as_json: bool) -> None:
    target = await resolve(url, data_dir)
    async with open_database(target) as db:
        report = await db.health()
        pool = db.pool_status()
    if as_json:
        print_json({**dataclasses.asdict(report), "pool": dataclasses.asdict(pool)})
    else:
        console().print(health_table(report, pool, target))
    if not report.ok:
        fail(f"{target.label} is not healthy: {report.error or 'no answer'}")


@app.command()
def health(
    url: UrlOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Probe the database: round-trip latency, server version, replica or not.

    Exits 1 when the database does not answer.
    """
    run(lambda: _health(url, data_dir, as_json))


async def _pool_status(url: str | None, data_dir: Path | None, as_json: bool) -> None:
    target = await resolve(url, data_dir)
    async with open_database(target) as db:
        async with db.session() as session:
            # One round trip, so the pool has opened (and returned) a connection.
            await session.execute(text("SELECT 1"))
        status = db.pool_status()
    if as_json:
        print_json(dataclasses.asdict(status))
        return
    table = Table(title="Connection pool", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", justify="right")
    for key, value in dataclasses.asdict(status).items():
        if key == "replicas":
            continue  # one row each, below
        table.add_row(
            key.replace("_", " "), f"{value:g}" if isinstance(value, float) else str(value)
        )
    for replica in status.replicas:
        table.add_row(f"replica {replica.url}", replica_line(replica))
    console().print(table)


@app.command("pool-status")
def pool_status(
    url: UrlOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Size, checked-in/out connections and overflow of the connection pool."""
    run(lambda: _pool_status(url, data_dir, as_json))


async def _check_schema(url: str | None, data_dir: Path | None) -> list[str]:
    target = await resolve(url, data_dir)
    return await asyncio.to_thread(migrations.check_schema, target.url)


@app.command("check-schema")
def check_schema(url: UrlOption = None, data_dir: DataDirOption = None) -> None:
    """Compare the live schema with the models; exit 1 and list the differences if any."""
    differences = run(lambda: _check_schema(url, data_dir))
    if differences:
        for line in differences:
            typer.echo(f"- {line}")
        fail(f"schema drift: {len(differences)} difference(s)")
    typer.echo("schema matches the models")
