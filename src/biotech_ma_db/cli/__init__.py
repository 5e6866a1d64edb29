"""The ``biotech-ma-db`` command line.

Every command that needs a database takes ``--url`` (or ``DATABASE_URL``); without one it
uses the embedded PostgreSQL in ``--data-dir`` (or ``BIOTECH_MA_DB_DATA_DIR``), started on
demand, with a database named ``biotech_ma``::

    biotech-ma-db demo                     # embedded server, migrations, data, report
    biotech-ma-db top --limit 5 --json
    biotech-ma-db company ABCD
    biotech-ma-db --help                   # every command has its own --help too

One module per command group, each registering its commands on the apps of ``_app``;
they share ``_common`` (console, errors and exit codes, options), ``_target`` (where to
connect), ``_reads`` (queries) and ``_render`` (tables, JSON)::

    demo        demo, seed
    queries     top, company
    ops         health, pool-status, check-schema
    roles       provision-roles
    migrate     migrate upgrade|downgrade|current|history
    partitions  partitions ensure|detach|list
    backup      backup, restore
    embedded    embedded start|stop|status|url
"""

from __future__ import annotations

from biotech_ma_db.cli._app import app
from biotech_ma_db.cli._render import sparkline

# isort: off
# Importing a command module registers its commands; their order here is that of --help.
from biotech_ma_db.cli import demo, queries, ops, roles, migrate, partitions, backup, embedded  # noqa: F401
# isort: on

__all__ = ["app", "main", "sparkline"]


def main() -> None:
    """Entry point of the ``biotech-ma-db`` console script."""
    app()
