"""``ClientRepository``: API clients, their keys (stored as digests) and watchlists.

An API key is ``bmap_live_`` plus 256 random bits (``secrets.token_urlsafe(32)``).  It is
returned once by :meth:`ClientRepository.create_with_api_key` and never stored: the table
keeps ``api_key_prefix`` (the first :data:`API_KEY_PREFIX_LENGTH` characters, for display
and support) and ``api_key_hash`` = hex HMAC-SHA-256 of the whole key under a server-side
pepper.  :meth:`ClientRepository.authenticate` hashes first and looks the client up by
digest, so the plaintext key never becomes a SQL parameter (or a logged one).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import BigInteger, ColumnElement, and_, any_, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db.errors import NotFoundError, ValidationError
from biotech_ma_db.models import Client, Company
from biotech_ma_db.repositories.base import Repository, check_id
from biotech_ma_db.repositories.query import ColumnAttribute, SortSpec

__all__ = [
    "API_KEY_PREFIX",
    "API_KEY_PREFIX_LENGTH",
    "DEVELOPMENT_API_KEY_PEPPER",
    "ClientRepository",
    "hash_api_key",
]

API_KEY_PREFIX: Final = "bmap_live_"
"""How every key starts (recognisable by secret scanners)."""

API_KEY_PREFIX_LENGTH: Final = 18
"""Characters of the key kept as ``api_key_prefix``: the marker plus 8 random characters
(48 bits, so prefixes of different clients practically never collide)."""

DEVELOPMENT_API_KEY_PEPPER: Final = b"biotech-ma-db-DEVELOPMENT-ONLY-api-key-pepper"
"""The pepper used when none is configured.  Fine for tests and demos; production must
pass its own secret (keys hashed under one pepper do not verify under another)."""

_MAX_KEY_LENGTH: Final = 256


def hash_api_key(api_key: str, pepper: bytes | str = DEVELOPMENT_API_KEY_PEPPER) -> str:
    """Hex HMAC-SHA-256 of ``api_key`` under ``pepper``: what ``api_key_hash`` stores."""
    key = pepper.encode() if isinstance(pepper, str) else pepper
    return hmac.new(key, api_key.encode(), hashlib.sha256).hexdigest()


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
        api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        client = await super().create(
            name=name,
            scopes=builtins.list(scopes),
            api_key_prefix=api_key[:API_KEY_PREFIX_LENGTH],
            api_key_hash=hash_api_key(api_key, self._pepper),
            **values,
        )
        return client, api_key

    async def authenticate(self, api_key: str) -> Client | None:
        """The active client owning ``api_key``, or ``None``.

        The key is hashed before the lookup (by digest, unique index), and the digest is
        compared again with :func:`hmac.compare_digest`.  Malformed keys are refused
        without a query.
        """
        if not _well_formed(api_key):
            return None
        digest = hash_api_key(api_key, self._pepper)
        stmt = select(Client, Client.api_key_hash).where(
            Client.api_key_hash == digest,
            Client.is_active.is_(True),
            Client.deleted_at.is_(None),
        )
        rows = (await self._execute(stmt)).all()
        if not rows:
            return None
        client, stored = rows[0]
        if not isinstance(stored, str) or not hmac.compare_digest(stored, digest):
            return None
        assert isinstance(client, Client)
        return client

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


def _well_formed(api_key: object) -> bool:
    return (
        isinstance(api_key, str)
        and api_key.startswith(API_KEY_PREFIX)
        and len(api_key) <= _MAX_KEY_LENGTH
        and api_key.isascii()
    )
