"""The generic repository: a small typed core over one ``AsyncSession``.

``ReadRepository[M]`` reads (get, list, count, keyset and offset pages; see
:mod:`~biotech_ma_db.repositories.read`); ``Repository[M]`` adds writes (create, update
with optimistic locking, soft or hard delete, restore).  Repositories **flush, never
commit**: the caller's session or unit of work decides when the transaction ends, so
several calls are atomic together.

Every statement goes through the I/O helpers of
:class:`~biotech_ma_db.repositories._session.SessionIO`, which turn SQLAlchemy and driver
exceptions into the library's typed errors in one place (:func:`translating_errors`).
Values are validated before any SQL (:mod:`~biotech_ma_db.repositories.validation`),
and sort/filter names from outside go through the repository's
``sortable``/``filterable`` whitelists (:mod:`~biotech_ma_db.repositories.query`).

Soft-deleted rows are invisible unless a method is called with ``include_deleted=True``.
Relationships are never loaded implicitly (``lazy="raise"``); pass them in ``load=`` to
have them loaded with ``selectinload``.

The names the domain repositories share (:data:`Criterion`, :func:`check_id`, ...) are
defined in :mod:`~biotech_ma_db.repositories._support` and importable from here.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable

from sqlalchemy import inspect

from biotech_ma_db.errors import ConcurrencyError, InvalidQueryError, ValidationError
from biotech_ma_db.repositories._support import (
    Criterion,
    Loadable,
    ModelT,
    check_id,
    is_deleted,
    translating_errors,
)
from biotech_ma_db.repositories.read import ReadRepository

__all__ = [
    "Criterion",
    "Loadable",
    "ModelT",
    "ReadRepository",
    "Repository",
    "check_id",
    "translating_errors",
]


class Repository(ReadRepository[ModelT]):
    """Reads and writes of one model; it flushes, never commits.

    Args:
        session: The session every statement runs in.
    """

    async def create(self, **values: object) -> ModelT:
        """Validate ``values``, insert the row and return it (with server defaults).

        Raises:
            ValidationError: Before any SQL, for an unknown field or a bad value.
            ConflictError: When a unique key is taken.
        """
        return await self._insert(self.rules.create(values))

    async def add_many(self, items: Iterable[ModelT]) -> builtins.list[ModelT]:
        """Validate and insert already-built model objects in one flush."""
        rows = builtins.list(items)
        rules = self.rules
        for index, row in enumerate(rows):
            if not isinstance(row, self.model):
                raise ValidationError("items", f"expected {self.model.__name__}", row=index)
            state = inspect(row)
            present = {
                key: state.dict[key]
                for key in rules.fields
                if key in state.dict and rules.fields[key].writable
            }
            for key, value in rules.create(present, row=index).items():
                setattr(row, key, value)
        self.session.add_all(rows)
        await self._flush()
        return rows

    async def update(
        self, id_: int, /, *, expected_version: int | None = None, **values: object
    ) -> ModelT:
        """Change some columns of one row and return it.

        Args:
            id_: Primary key.
            expected_version: For versioned models, the ``version`` the caller last saw;
                a different current version raises ``ConcurrencyError`` and writes nothing.
            **values: Columns to change.

        Raises:
            ValidationError: Before any SQL, for an unknown field or a bad value.
            NotFoundError: No such row (or it is soft-deleted).
            ConcurrencyError: For versioned models: the row is not at
                ``expected_version``, or another transaction committed a change since this
                session read it (checked by the UPDATE itself).
        """
        cleaned = self.rules.update(values)
        if expected_version is not None:
            check_id(expected_version, "expected_version")
            if self._mapper.version_id_col is None:
                raise InvalidQueryError(f"{self.model.__name__} is not versioned")
        row = await self._for_write(id_)
        if expected_version is not None:
            key = self._version_key()
            if getattr(row, key) != expected_version:
                # The session's copy may be older than what the caller saw: ask the database.
                loaded = [attr.key for attr in self._mapper.column_attrs if not attr.deferred]
                with translating_errors():
                    await self.session.refresh(row, attribute_names=loaded)
            current = getattr(row, key)
            if current != expected_version:
                raise ConcurrencyError(
                    f"{self.model.__name__} {id_} is at version {current}, not {expected_version}"
                )
        for key, value in cleaned.items():
            setattr(row, key, value)
        await self._flush()
        return row

    async def delete(self, id_: int, /, *, hard: bool = False) -> None:
        """Soft-delete the row (models with ``deleted_at``), or purge it with ``hard=True``.

        Raises:
            NotFoundError: No such row (a soft-deleted one can still be purged).
        """
        if hard or not self.soft_deletes:
            row = await self._for_write(id_, include_deleted=True)
            with translating_errors():
                await self.session.delete(row)
        else:
            row = await self._for_write(id_)
            row.deleted_at = dt.datetime.now(dt.UTC)  # type: ignore[attr-defined]  # soft_deletes
        await self._flush()

    async def restore(self, id_: int, /) -> ModelT:
        """Undo a soft delete and return the row (a no-op for a row that is not deleted).

        Raises:
            InvalidQueryError: The model has no soft delete.
            NotFoundError: No such row.
            ConflictError: A live row now holds its unique key.
        """
        if not self.soft_deletes:
            raise InvalidQueryError(f"{self.model.__name__} has no soft delete to undo")
        row = await self._for_write(id_, include_deleted=True)
        if is_deleted(row):
            row.deleted_at = None  # type: ignore[attr-defined]  # soft_deletes checked above
            await self._flush()
        return row

    def _version_key(self) -> str:
        column = self._mapper.version_id_col
        assert column is not None, "callers check that the model is versioned"
        return self._mapper.get_property_by_column(column).key

    async def _for_write(self, id_: int, *, include_deleted: bool = False) -> ModelT:
        """The row to change: the session's copy when it has one, else loaded.

        The session's copy is deliberately not refreshed: for versioned models the UPDATE
        then checks the version this session read (``WHERE version = :seen``), so a
        concurrent commit since that read raises ``ConcurrencyError`` instead of being
        overwritten.
        """
        return await self.get_or_raise(id_, include_deleted=include_deleted)
