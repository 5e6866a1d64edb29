"""The four contenders, each doing the same operations its own idiomatic way.

raw asyncpg (:mod:`bench.peer_raw`), the SQLAlchemy ORM and advanced-alchemy
(:mod:`bench.peer_sa`), and this library (:mod:`bench.peer_lib`); what they share is in
:mod:`bench.peer_base`.  See ``bench/README.md`` for what each row measures.
"""

from __future__ import annotations

from bench.peer_base import AREAS, CONCURRENT_TASKS, PAGE, POOL_SIZE, Peer
from bench.peer_lib import Library
from bench.peer_raw import RawAsyncpg
from bench.peer_sa import AdvancedAlchemy, SqlAlchemyOrm
from bench.statements import BY_COMPANY_SQL, PAGE_SQL, POINT_SQL

__all__ = [
    "AREAS",
    "BY_COMPANY_SQL",
    "CONCURRENT_TASKS",
    "PAGE",
    "PAGE_SQL",
    "PEERS",
    "POINT_SQL",
    "POOL_SIZE",
    "AdvancedAlchemy",
    "Library",
    "Peer",
    "RawAsyncpg",
    "SqlAlchemyOrm",
]

PEERS: tuple[type[Peer], ...] = (RawAsyncpg, SqlAlchemyOrm, AdvancedAlchemy, Library)
