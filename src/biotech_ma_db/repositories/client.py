"""``ClientRepository``: API clients, their keys (stored as digests) and watchlists.

An API key is ``bmap_live_`` plus 256 random bits (``secrets.token_urlsafe(32)``).  It is
returned once by :meth:`ClientRepository.create_with_api_key` and never stored: the table
keeps ``api_key_prefix`` (the first :data:`API_KEY_PREFIX_LENGTH` characters, for display
and support) and ``api_key_hash`` = hex HMAC-SHA-256 of the whole key under a server-side
pepper.  :meth:`ClientRepository.authenticate` hashes first and looks the client up by
digest, so the plaintext key never becomes a SQL parameter (or a logged one).

Since revision 0002 the keys live in ``api_keys`` (several per client, revocable; see
:mod:`biotech_ma_db.repositories.api_key`), which :meth:`ClientRepository.authenticate`
consults; ``clients.api_key_prefix``/``api_key_hash`` keep recording the client's first
key.  Under row-level security, creating a client allocates its id first and scopes the
insert to it; authentication scopes the transaction to the key's client.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    any_,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db.errors import NotFoundError, ValidationError
from biotech_ma_db.models import Client, Company
from biotech_ma_db.repositories.api_key import (
    API_KEY_PREFIX,
    API_KEY_PREFIX_LENGTH,
    ApiKeyRepository,
    generate_api_key,
    hash_api_key,
)
from biotech_ma_db.repositories.base import Repository, check_id
from biotech_ma_db.repositories.query import ColumnAttribute, SortSpec
from biotech_ma_db.security import DEVELOPMENT_API_KEY_PEPPER

__all__ = [
    "API_KEY_PREFIX",
    "API_KEY_PREFIX_LENGTH",
    "DEVELOPMENT_API_KEY_PEPPER",
    "ClientRepository",
    "hash_api_key",
]

# Allocates the new client's id and scopes the transaction to it (row-level security
# checks the INSERT against app.client_id); returns the scope it replaced.
_ALLOCATE_CLIENT: Final = text(
    "SELECT s.id, s.previous, set_config('app.client_id', s.id::text, true) FROM ("
    "SELECT nextval(pg_get_serial_sequence('clients', 'id')) AS id, "
    "coalesce(current_setting('app.client_id', true), '') AS previous) AS s"
)
_RESTORE_SCOPE: Final = text("SELECT set_config('app.client_id', :previous, true)")


class ClientRepository(Repository[Client]):
    """API clients: key issue and check, watchlists.

    Args:
        session: The session every statement runs in.
        pepper: Secret key of the API-key HMAC; :data:`DEVELOPMENT_API_KEY_PEPPER` when
            omitted.
    """

    model = Client
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": Client.id,
        "name": Client.name,
        "created_at": Client.created_at,
        "last_seen_at": Client.last_seen_at,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "is_active": Client.is_active,
        "api_key_prefix": Client.api_key_prefix,
    }
    default_order: ClassVar[SortSpec] = "name"

    def __init__(self, session: AsyncSession, *, pepper: bytes | str | None = None) -> None:
        super().__init__(session)
        self._pepper: bytes | str = pepper if pepper is not None else DEVELOPMENT_API_KEY_PEPPER

    def __repr__(self) -> str:
        return "ClientRepository(Client)"

    async def create_with_api_key(
        self,
        name: str,
        *,
        scopes: Sequence[str] = (),
        **values: object,
    ) -> tuple[Client, str]:
        """Create a client and its API key.

        Args:
            name: The client's name.
            scopes: Granted scopes.
            **values: Other columns (``rate_limit_per_minute``, ``preferences``, ...).

        Returns:
            The client and the plaintext key.  Show the key to its owner now: it is not
            stored and cannot be recovered.

        Raises:
            ValidationError: Before any SQL, for a bad value (``api_key_*`` may not be
                given).
        """
        for field in ("api_key_prefix", "api_key_hash"):
            if field in values:
                raise ValidationError(field, "is derived from the generated key")
        api_key = generate_api_key()
        digest = hash_api_key(api_key, self._pepper)
        cleaned = self.rules.create(
            {
                "name": name,
                "scopes": builtins.list(scopes),
                "api_key_prefix": api_key[:API_KEY_PREFIX_LENGTH],
                "api_key_hash": digest,
                **values,
            }
        )
        client_id, previous, _ = (await self._execute(_ALLOCATE_CLIENT)).one()
        client = Client(id=int(client_id), **cleaned)
        self.session.add(client)
        await self._flush()
        await self.api_keys.add_issued(client.id, api_key, name="primary")
        await self._execute(_RESTORE_SCOPE, {"previous": previous})
        return client, api_key

    @property
    def api_keys(self) -> ApiKeyRepository:
        """The client keys' repository on the same session and pepper."""
        return ApiKeyRepository(self.session, pepper=self._pepper)

    async def authenticate(self, api_key: str) -> Client | None:
        """The active client owning ``api_key``, or ``None``.

        The key is hashed before the lookup (by digest in ``api_keys``, unique index),
        and the digest is compared again with :func:`hmac.compare_digest`.  Malformed
        keys are refused without a query; revoked and expired keys do not match.  On a
        match the transaction is scoped to the key's client (row-level security); a unit
        of work already scoped to another client never matches.
        """
        found = await self.api_keys.lookup(api_key)
        if found is None:
            return None
        stmt = select(Client).where(
            Client.id == found.client_id,
            Client.is_active.is_(True),
            Client.deleted_at.is_(None),
        )
        rows = await self._scalars(stmt)
        return rows[0] if rows else None

    async def add_to_watchlist(self, client_id: int, company_id: int) -> builtins.list[int]:
        """Add a live company to the client's watchlist (no duplicates); returns the list.

        One atomic ``UPDATE ... SET watchlist = array_append(...)`` guarded by
        ``company_id = ANY(watchlist)``, so concurrent adds never lose each other.

        Raises:
            NotFoundError: No such live client or company.
        """
        check_id(client_id, "client_id")
        check_id(company_id, "company_id")
        company_exists = select(Company.id).where(
            Company.id == company_id, Company.deleted_at.is_(None)
        )
        if not await self._scalars(company_exists):
            raise NotFoundError("Company", company_id)
        member = literal(company_id, BigInteger)
        new_list = func.array_append(Client.watchlist, member)
        return await self._change_watchlist(
            client_id,
            new_list,
            and_(Client.id == client_id, ~(member == any_(Client.watchlist))),
        )

    async def remove_from_watchlist(self, client_id: int, company_id: int) -> builtins.list[int]:
        """Remove a company from the client's watchlist (a no-op if absent); returns it."""
        check_id(client_id, "client_id")
        check_id(company_id, "company_id")
        member = literal(company_id, BigInteger)
        new_list = func.array_remove(Client.watchlist, member)
        return await self._change_watchlist(
            client_id, new_list, and_(Client.id == client_id, member == any_(Client.watchlist))
        )

    async def _change_watchlist(
        self, client_id: int, new_list: ColumnElement[Any], changes: ColumnElement[bool]
    ) -> builtins.list[int]:
        """Apply ``new_list`` where ``changes`` holds; otherwise just read the list.

        A real change bumps ``version``: a caller holding the old watchlist for an
        optimistic update must not overwrite it.
        """
        stmt = (
            update(Client)
            .where(changes, Client.deleted_at.is_(None))
            .values(watchlist=new_list, version=Client.version + 1)
            .returning(Client)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        updated = await self._scalars(stmt)
        if updated:
            return builtins.list(updated[0].watchlist)
        current = await self._scalars(
            select(Client.watchlist).where(Client.id == client_id, Client.deleted_at.is_(None))
        )
        if not current:
            raise NotFoundError("Client", client_id)
        return builtins.list(current[0])
