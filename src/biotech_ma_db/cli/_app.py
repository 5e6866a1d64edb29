"""The Typer applications the command modules register on.

They live here, below every command module, so that a command module imports its app
and ``cli/__init__`` imports the command modules: imports flow one way, no cycle.
"""

from __future__ import annotations

import typer

__all__ = ["app", "embedded_app", "migrate_app"]

app = typer.Typer(
    name="biotech-ma-db",
    help="Database tools of the biotech M&A predictor: demo data, rankings, migrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
"""The ``biotech-ma-db`` command."""

migrate_app = typer.Typer(
    help="Apply, revert and inspect schema migrations (Alembic).", no_args_is_help=True
)
"""``biotech-ma-db migrate ...``."""

embedded_app = typer.Typer(
    help="Run the embedded PostgreSQL server (no install, no Docker).", no_args_is_help=True
)
"""``biotech-ma-db embedded ...``."""

app.add_typer(migrate_app, name="migrate")
app.add_typer(embedded_app, name="embedded")
