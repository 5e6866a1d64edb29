"""Testing support: the pytest plugin, PostgreSQL providers and throwaway databases.

The plugin is registered automatically (entry point ``pytest11``); see
:mod:`biotech_ma_db.testing.plugin` for the fixtures it provides.
"""

from biotech_ma_db.testing.databases import (
    clone_database,
    create_database,
    database_url,
    drop_database,
)
from biotech_ma_db.testing.providers import ProvidedPostgres, choose_provider, provide_postgres

__all__ = [
    "ProvidedPostgres",
    "choose_provider",
    "clone_database",
    "create_database",
    "database_url",
    "drop_database",
    "provide_postgres",
]
