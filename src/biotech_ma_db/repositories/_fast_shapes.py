"""Fast-path query shapes: a SELECT of a model's columns, compiled once per dialect.

A repository method keeps one :class:`QueryShapes`; each combination of its optional
criteria and sort order is one :class:`FastQuery`, whose statement is built and compiled
on first use and kept with SQLAlchemy's own SQL text, bind processors and result
processors (see :mod:`biotech_ma_db.repositories._fast`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper

from biotech_ma_db.sa_internals import (
    EntityLoader,
    Processor,
    bind_processor,
    compile_positional,
    result_processor,
)

__all__ = ["Builder", "Compiled", "FastQuery", "QueryShapes", "entity_columns", "entity_loader"]

Builder = Callable[[Sequence[Column[Any]]], Select[Any]]


@dataclass(frozen=True, slots=True)
class Compiled:
    """One query shape compiled for one dialect."""

    sql: str
    params: tuple[tuple[str, object, Processor | None], ...]
    """``(name, default, bind processor)`` in placeholder order."""
    processors: tuple[tuple[int, Processor], ...]
    """``(column position, result processor)`` of the columns that need one."""


class FastQuery:
    """One query shape: a SELECT of every column of a mapped table, compiled lazily.

    Args:
        mapper: The model's mapper (the base mapper of a polymorphic hierarchy).
        build: Builds the Core statement from :attr:`columns` (selected in that order);
            values supplied at execution are ``bindparam`` names.
        joined: ``(relationship key, mapper)`` of a many-to-one loaded along, as
            ``contains_eager`` would: its columns follow the model's in :attr:`columns`.
            Such a query runs only in a session with an empty identity map (the ORM path
            refreshes objects already loaded, which this one does not do).
    """

    __slots__ = (
        "_build",
        "_compiled",
        "_last",
        "columns",
        "joined_key",
        "keys",
        "loader",
        "mapper",
    )

    def __init__(
        self, mapper: Mapper[Any], build: Builder, *, joined: tuple[str, Mapper[Any]] | None = None
    ) -> None:
        self.mapper = mapper
        columns, keys = entity_columns(mapper)
        #: The model's column attribute keys, in the order they are selected.
        self.keys = keys
        self.joined_key: str | None = None
        row = columns
        related: tuple[str, EntityLoader] | None = None
        if joined is not None:
            self.joined_key, child = joined
            child_columns, child_keys = entity_columns(child)
            row = columns + child_columns
            related = (
                self.joined_key,
                _loader(child, child_keys, child_columns, start=len(columns), width=len(row)),
            )
        self.columns = row
        self.loader = _loader(mapper, keys, columns, start=0, width=len(row), joined=related)
        self._build = build
        self._compiled: weakref.WeakKeyDictionary[Dialect, Compiled] = weakref.WeakKeyDictionary()
        # The dialect seen last, checked first (one engine per process is the usual case);
        # a strong reference, as the dialect's engine normally lives as long anyway.
        self._last: tuple[Dialect, Compiled] | None = None

    async def compiled(self, dialect: Dialect, driver: Any) -> Compiled:
        """SQL text, parameter order and processors for ``dialect`` (built once)."""
        last = self._last
        if last is not None and last[0] is dialect:
            return last[1]
        found = self._compiled.get(dialect)
        if found is not None:
            self._last = (dialect, found)
            return found
        statement = compile_positional(self._build(self.columns), dialect)
        params = tuple(
            (name, bind.effective_value, bind_processor(bind.type, dialect))
            for name, bind in statement.params
        )
        # Result processors depend on the server type of each output column.
        attributes = (await driver.prepare(statement.sql)).get_attributes()
        processors = tuple(
            (index, processor)
            for index, (column, attribute) in enumerate(zip(self.columns, attributes, strict=True))
            if (
                processor := result_processor(
                    column.type, dialect, attribute.type.oid, copy_lists=False
                )
            )
            is not None
        )
        found = Compiled(statement.sql, params, processors)
        self._compiled[dialect] = found
        self._last = (dialect, found)
        return found


class QueryShapes:
    """The query shapes of one repository method, built on first use."""

    __slots__ = ("_queries",)

    def __init__(self) -> None:
        self._queries: dict[Hashable, FastQuery] = {}

    def get(
        self,
        key: Hashable,
        mapper: Mapper[Any],
        build: Builder,
        *,
        joined: tuple[str, Mapper[Any]] | None = None,
    ) -> FastQuery:
        """The shape for ``key``, made from ``mapper``, ``build`` and ``joined`` the first time."""
        query = self._queries.get(key)
        if query is None:
            query = FastQuery(mapper, build, joined=joined)
            self._queries[key] = query
        return query


def entity_columns(mapper: Mapper[Any]) -> tuple[tuple[Column[Any], ...], tuple[str, ...]]:
    """The table columns of ``mapper``'s column attributes and their keys, in mapper order."""
    attrs = [attr for attr in mapper.column_attrs if len(attr.columns) == 1]
    columns: tuple[Column[Any], ...] = tuple(
        attr.columns[0]  # type: ignore[misc]  # plain table columns (checked in tests)
        for attr in attrs
    )
    if len(mapper.primary_key) != 1:
        raise TypeError(f"{mapper.class_.__name__}: fast reads need a one-column key")
    return columns, tuple(attr.key for attr in attrs)


def entity_loader(
    mapper: Mapper[Any], keys: tuple[str, ...], columns: tuple[Column[Any], ...]
) -> EntityLoader:
    """The loader of rows holding exactly ``columns`` (from :func:`entity_columns`)."""
    return _loader(mapper, keys, columns, start=0, width=len(columns))


def _loader(
    mapper: Mapper[Any],
    keys: tuple[str, ...],
    own: tuple[Column[Any], ...],
    *,
    start: int,
    width: int,
    joined: tuple[str, EntityLoader] | None = None,
) -> EntityLoader:
    """The loader of the entity whose columns ``own`` start at ``start`` in a ``width`` row."""
    stop = start + len(own)
    discriminator = None
    if mapper.polymorphic_on is not None:
        discriminator = start + _position(own, mapper.polymorphic_on)
    return EntityLoader(
        mapper,
        keys,
        primary_key=start + _position(own, mapper.primary_key[0]),
        columns=None if start == 0 and stop == width else slice(start, stop),
        discriminator=discriminator,
        joined=joined,
    )


def _position(columns: Sequence[object], column: object) -> int:
    # By identity: ``list.index`` would compare columns with ``==``, building SQL.
    for index, candidate in enumerate(columns):
        if candidate is column:
            return index
    raise LookupError(f"{column!r} is not selected")
