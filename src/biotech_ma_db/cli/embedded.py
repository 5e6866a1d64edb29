"""``embedded start|stop|status|url``: run the embedded PostgreSQL by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from biotech_ma_db import embedded
from biotech_ma_db.cli._app import embedded_app
from biotech_ma_db.cli._common import EXIT_FAILURE, DataDirOption, fail, run
from biotech_ma_db.cli._target import DATABASE_NAME, start_embedded

__all__ = ["embedded_start", "embedded_status", "embedded_stop", "embedded_url"]


@embedded_app.command("start")
def embedded_start(data_dir: DataDirOption = None) -> None:
    """Start the embedded PostgreSQL (initialised on first use) and create its database."""
    server = run(lambda: start_embedded(data_dir))
    typer.echo(f"embedded PostgreSQL running (pid {server.pid}) in {server.data_dir}")
    typer.echo(server.url(DATABASE_NAME))


async def _embedded_stop(data_dir: Path | None) -> bool:
    return await asyncio.to_thread(embedded.stop, data_dir)


@embedded_app.command("stop")
def embedded_stop(data_dir: DataDirOption = None) -> None:
    """Stop the embedded PostgreSQL (its data stays in the data folder)."""
    folder = data_dir or embedded.default_data_dir()
    if run(lambda: _embedded_stop(data_dir)):
        typer.echo(f"embedded PostgreSQL stopped ({folder})")
    else:
        typer.echo(f"embedded PostgreSQL was not running ({folder})")


async def _embedded_status(data_dir: Path | None) -> embedded.EmbeddedServer | None:
    return embedded.status(data_dir)


@embedded_app.command("status")
def embedded_status(data_dir: DataDirOption = None) -> None:
    """Whether the embedded PostgreSQL runs; exits 1 when it does not."""
    server = run(lambda: _embedded_status(data_dir))
    if server is None:
        typer.echo(
            f"embedded PostgreSQL is not running ({data_dir or embedded.default_data_dir()})"
        )
        raise typer.Exit(EXIT_FAILURE)
    typer.echo(
        f"embedded PostgreSQL running (pid {server.pid}) in {server.data_dir}, "
        f"socket {server.socket_dir}/.s.PGSQL.{server.port}"
    )


@embedded_app.command("url")
def embedded_url(data_dir: DataDirOption = None) -> None:
    """Print the URL of the running embedded server's database (for DATABASE_URL)."""
    server = run(lambda: _embedded_status(data_dir))
    if server is None:
        fail("the embedded PostgreSQL is not running: start it with `biotech-ma-db embedded start`")
    typer.echo(server.url(DATABASE_NAME))
