"""The engine layer: engines, pools, connection options and the hooks installed on them.

Below the models in the package's layering (settings and errors → engine → models →
repositories → unit of work → ``Database`` facade, CLI, testing, integrations).  Read
replicas and the routing of read-only sessions to them live here too
(:mod:`.replicas`, :mod:`.routing`, :mod:`.consistency`, :mod:`.read_only`).
"""

from biotech_ma_db.engine.consistency import PRIMARY_ONLY, ConsistencyToken
from biotech_ma_db.engine.hooks import deferred_ping, install_engine_hooks
from biotech_ma_db.engine.manager import ConnectionManager
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
from biotech_ma_db.engine.read_only import READ_ONLY_KEY, ensure_writable, install_read_only_guard
from biotech_ma_db.engine.replicas import Replica, build_engine
from biotech_ma_db.engine.routing import ReplicaRouter, SessionLease
from biotech_ma_db.engine.status import HealthReport, PoolStatus, ReplicaStatus

__all__ = [
    "AUTOCOMMIT_READS_OPTION",
    "FAST_READS_OPTION",
    "PLAIN_SESSION_KEY",
    "PRIMARY_ONLY",
    "READ_ONLY_KEY",
    "SLOW_QUERY_OPTION",
    "ConnectionManager",
    "ConsistencyToken",
    "HealthReport",
    "PoolStatus",
    "Replica",
    "ReplicaRouter",
    "ReplicaStatus",
    "SessionLease",
    "build_engine",
    "connect_args",
    "deferred_ping",
    "engine_options",
    "ensure_writable",
    "fast_path_options",
    "install_engine_hooks",
    "install_read_only_guard",
    "server_settings",
]
