"""The engine layer: engines, pools, connection options and the hooks installed on them.

Below the models in the package's layering (settings and errors → engine → models →
repositories → unit of work → ``Database`` facade, CLI, testing, integrations).
"""

from biotech_ma_db.engine.hooks import deferred_ping, install_engine_hooks
from biotech_ma_db.engine.manager import ConnectionManager, HealthReport, PoolStatus
from biotech_ma_db.engine.options import (
    AUTOCOMMIT_READS_OPTION,
    FAST_READS_OPTION,
    PLAIN_SESSION_KEY,
    SLOW_QUERY_OPTION,
    connect_args,
    engine_options,
    fast_path_options,
    server_settings,
)

__all__ = [
    "AUTOCOMMIT_READS_OPTION",
    "FAST_READS_OPTION",
    "PLAIN_SESSION_KEY",
    "SLOW_QUERY_OPTION",
    "ConnectionManager",
    "HealthReport",
    "PoolStatus",
    "connect_args",
    "deferred_ping",
    "engine_options",
    "fast_path_options",
    "install_engine_hooks",
    "server_settings",
]
