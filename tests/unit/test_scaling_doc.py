"""``docs/scaling.md`` against the models: what it says about Citus holds for this schema.

The document maps every table to a Citus role (distributed by a column, reference, local)
and lists the constraints that would have to change, and which repository queries stay on
one shard.  These tests read those tables and check each claim that can be checked
without a cluster: every table is mapped once; a distributed table's distribution column
exists and is in each of its unique keys, or the key is listed with a new column list that
adds it; no key is listed that does not need it; the foreign keys fit Citus' rules; each
query names a real repository method, and a one-shard method takes the distribution
column; every constraint or index the text names exists.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Index, Table, UniqueConstraint

from biotech_ma_db import repositories
from biotech_ma_db.models import Base

DOC = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"
TABLES = Base.metadata.tables
ROLES = {"distributed", "reference", "local"}
NONE = "—"
_KEY_CHANGE = re.compile(r"`(\w+)` → \(([^)]*)\)")
_NAMED = re.compile(r"`((?:pk|uq|ix|fk|ck)_\w+)`")


def _rows(header: str) -> list[list[str]]:
    """The body rows of the markdown table whose header row starts with ``| header |``."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows: list[list[str]] = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _plain(cell: str) -> str:
    return cell.replace("`", "").strip()


@dataclass(frozen=True)
class Mapping:
    """One row of the table-role table."""

    table: str
    role: str
    column: str | None
    changes: dict[str, tuple[str, ...]]


def _mapping() -> dict[str, Mapping]:
    found: dict[str, Mapping] = {}
    for table, role, column, changes in _rows("table"):
        name = _plain(table)
        assert name not in found, f"{name} is mapped twice"
        found[name] = Mapping(
            table=name,
            role=_plain(role),
            column=None if _plain(column) == NONE else _plain(column),
            changes={
                key: tuple(_plain(c) for c in columns.split(","))
                for key, columns in _KEY_CHANGE.findall(changes)
            },
        )
        assert (changes.strip() == NONE) == (not found[name].changes), changes
    return found


MAPPING = _mapping()


def _unique_keys(table: Table) -> dict[str, tuple[str, ...]]:
    """Primary key, unique constraints and unique indexes: name -> columns."""
    keys = {str(table.primary_key.name): tuple(c.name for c in table.primary_key.columns)}
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            keys[str(constraint.name)] = tuple(c.name for c in constraint.columns)
    for index in table.indexes:
        if isinstance(index, Index) and index.unique:
            keys[str(index.name)] = tuple(c.name for c in index.columns)
    return keys


def test_every_table_of_the_models_is_mapped_once() -> None:
    assert set(MAPPING) == set(TABLES)
    assert {m.role for m in MAPPING.values()} <= ROLES


@pytest.mark.parametrize("name", sorted(MAPPING))
def test_distribution_column_is_in_every_unique_key_or_listed(name: str) -> None:
    mapping, table = MAPPING[name], TABLES[name]
    if mapping.role != "distributed":
        assert mapping.column is None, f"a {mapping.role} table has no distribution column"
        assert not mapping.changes, f"nothing to change on a {mapping.role} table"
        return
    assert mapping.column in table.columns, f"{name} has no column {mapping.column}"
    keys = _unique_keys(table)
    lacking = {key for key, columns in keys.items() if mapping.column not in columns}
    assert set(mapping.changes) == lacking, "the keys listed are not those that lack it"
    for key, new_columns in mapping.changes.items():
        assert mapping.column in new_columns
        assert set(keys[key]) <= set(new_columns), f"{key} would lose a column"
        assert set(new_columns) <= set(table.columns.keys()), f"{key}: unknown column"


@pytest.mark.parametrize("name", sorted(MAPPING))
def test_foreign_keys_follow_citus_rules(name: str) -> None:
    source = MAPPING[name]
    for fk in TABLES[name].foreign_key_constraints:
        target = MAPPING[fk.referred_table.name]
        pair = (source.role, target.role)
        where = f"{fk.name}: {name} ({source.role}) -> {target.table} ({target.role})"
        if pair == ("distributed", "distributed"):
            # Colocated only: the key must pair the two distribution columns.
            pairs = {(e.parent.name, e.column.name) for e in fk.elements}
            assert (source.column, target.column) in pairs, where
        else:
            allowed = {
                ("distributed", "reference"),
                ("reference", "reference"),
                ("local", "local"),
                ("local", "reference"),
            }
            assert pair in allowed, where


def test_constraint_names_in_the_text_exist() -> None:
    names = {str(c.name) for t in TABLES.values() for c in t.constraints}
    names |= {str(i.name) for t in TABLES.values() for i in t.indexes}
    mentioned = set(_NAMED.findall(DOC.read_text(encoding="utf-8")))
    assert mentioned, "the document names no constraint"
    assert mentioned <= names


QUERIES = _rows("query")
SHARDS = {"one", "all", "per row", "none"}


@pytest.mark.parametrize(("query", "shards", "why"), QUERIES, ids=[_plain(q[0]) for q in QUERIES])
def test_query_claims(query: str, shards: str, why: str) -> None:
    class_name, method_name = _plain(query).split(".")
    repository = getattr(repositories, class_name)
    method = getattr(repository, method_name)
    assert shards in SHARDS
    mapping = MAPPING[repository.model.__tablename__]
    parameters = inspect.signature(method).parameters
    if shards == "one":
        assert mapping.role == "distributed"
        assert mapping.column in parameters, f"{query} does not take {mapping.column}"
        assert mapping.column in why
    elif shards == "per row":
        assert mapping.role == "distributed"
    elif shards == "none":
        assert mapping.role == "reference"
    else:
        assert mapping.role == "distributed"
        assert mapping.column not in parameters or "without" in why
