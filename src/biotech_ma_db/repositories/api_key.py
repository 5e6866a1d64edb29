"""``ApiKeyRepository``: issue, list and revoke a client's API keys (several per client).

A key is ``bmap_live_`` + ``secrets.token_urlsafe(32)`` (256 random bits).  It is returned
once by :meth:`ApiKeyRepository.issue` and never stored: ``api_keys`` keeps the HMAC-SHA-256
digest under the server's pepper (``key_hash``), the first 18 characters (``key_prefix``)
and the last 4 (``last4``) for display.  The digest is computed before any SQL, so the
plaintext key is never a bound parameter (nor, therefore, in a log line or an error).

Under row-level security a client's keys are visible only inside a unit of work for that
client (``db.unit_of_work(client_id=...)``); authentication, which happens before the
client is known, goes through the ``app_authenticate_api_key`` database function instead
(:meth:`~biotech_ma_db.repositories.client.ClientRepository.authenticate`).
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import ClassVar, Final

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db.errors import NotFoundError, ValidationError
from biotech_ma_db.models import ApiKey
from biotech_ma_db.repositories.base import Repository, check_id
from biotech_ma_db.repositories.query import ColumnAttribute, SortSpec
from biotech_ma_db.security import DEVELOPMENT_API_KEY_PEPPER

__all__ = [
    "API_KEY_PREFIX",
    "API_KEY_PREFIX_LENGTH",
    "ApiKeyRepository",
    "AuthenticatedKey",
    "generate_api_key",
    "hash_api_key",
    "well_formed_api_key",
]

API_KEY_PREFIX: Final = "bmap_live_"
"""How every key starts (recognisable by secret scanners)."""

API_KEY_PREFIX_LENGTH: Final = 18
"""Characters of the key kept as its prefix: the marker plus 8 random characters."""

_MAX_KEY_LENGTH: Final = 256
_MAX_NAME_LENGTH: Final = 200


def hash_api_key(api_key: str, pepper: bytes | str = DEVELOPMENT_API_KEY_PEPPER) -> str:
    """Hex HMAC-SHA-256 of ``api_key`` under ``pepper``: what ``key_hash`` stores."""
    key = pepper.encode() if isinstance(pepper, str) else pepper
    return hmac.new(key, api_key.encode(), hashlib.sha256).hexdigest()


def generate_api_key() -> str:
    """A new key: the ``bmap_live_`` marker and 256 random bits (URL-safe base64)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def well_formed_api_key(api_key: object) -> bool:
    """Whether ``api_key`` could be one of ours (checked before hashing or any SQL)."""
    return (
        isinstance(api_key, str)
        and api_key.startswith(API_KEY_PREFIX)
        and len(api_key) <= _MAX_KEY_LENGTH
        and api_key.isascii()
        and "\x00" not in api_key
    )


class AuthenticatedKey:
    """The live key found by :meth:`ApiKeyRepository.lookup`: its id and client."""

    __slots__ = ("api_key_id", "client_id")

    def __init__(self, api_key_id: int, client_id: int) -> None:
        self.api_key_id = api_key_id
        self.client_id = client_id

    def __repr__(self) -> str:
        return f"AuthenticatedKey(api_key_id={self.api_key_id}, client_id={self.client_id})"


_AUTHENTICATE = text(
    "SELECT api_key_id, client_id, key_hash FROM app_authenticate_api_key(:digest)"
)


class ApiKeyRepository(Repository[ApiKey]):
    """A client's API keys.

    Args:
        session: The session every statement runs in.
        pepper: Secret key of the digest HMAC (``DB_API_KEY_PEPPER``);
            :data:`~biotech_ma_db.security.DEVELOPMENT_API_KEY_PEPPER` when omitted.
    """

    model = ApiKey
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": ApiKey.id,
        "created_at": ApiKey.created_at,
        "last_used_at": ApiKey.last_used_at,
        "expires_at": ApiKey.expires_at,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "client_id": ApiKey.client_id,
        "key_prefix": ApiKey.key_prefix,
        "revoked_at": ApiKey.revoked_at,
    }
    default_order: ClassVar[SortSpec] = "id"

    def __init__(self, session: AsyncSession, *, pepper: bytes | str | None = None) -> None:
        super().__init__(session)
        self._pepper: bytes | str = pepper if pepper is not None else DEVELOPMENT_API_KEY_PEPPER

    def __repr__(self) -> str:
        return "ApiKeyRepository(ApiKey)"

    def digest(self, api_key: str) -> str:
        """The stored digest of ``api_key`` under this repository's pepper."""
        return hash_api_key(api_key, self._pepper)

    async def issue(
        self,
        client_id: int,
        *,
        name: str | None = None,
        expires_at: dt.datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """Issue a new key for a client; other keys stay valid.

        Returns:
            The key's row and the plaintext key.  Show the key now: it is not stored and
            cannot be recovered.

        Raises:
            ValidationError: Before any SQL, for a bad name or expiry.
            PermissionDeniedError: Row-level security: the unit of work is scoped to
                another client.
        """
        check_id(client_id, "client_id")
        label: object = name
        if label is not None and (
            not isinstance(label, str) or "\x00" in label or len(label) > _MAX_NAME_LENGTH
        ):
            raise ValidationError("name", f"expected text of at most {_MAX_NAME_LENGTH} chars")
        expiry: object = expires_at
        if expiry is not None and (not isinstance(expiry, dt.datetime) or expiry.tzinfo is None):
            raise ValidationError("expires_at", "expected a timezone-aware datetime")
        api_key = generate_api_key()
        row = await self.add_issued(client_id, api_key, name=name, expires_at=expires_at)
        return row, api_key

    async def add_issued(
        self,
        client_id: int,
        api_key: str,
        *,
        name: str | None = None,
        expires_at: dt.datetime | None = None,
    ) -> ApiKey:
        """Store the digest, prefix and last 4 characters of a key just generated."""
        if not well_formed_api_key(api_key):
            raise ValidationError("api_key", "not a key generated by generate_api_key()")
        return await self.create(
            client_id=client_id,
            key_prefix=api_key[:API_KEY_PREFIX_LENGTH],
            key_hash=self.digest(api_key),
            last4=api_key[-4:],
            name=name,
            expires_at=expires_at,
        )

    async def list_for_client(
        self, client_id: int, *, include_revoked: bool = False
    ) -> builtins.list[ApiKey]:
        """A client's keys, oldest first (never their digests)."""
        criteria = [ApiKey.client_id == check_id(client_id, "client_id")]
        if not include_revoked:
            criteria.append(ApiKey.revoked_at.is_(None))
        return await self.list(*criteria, limit=500)

    async def revoke(self, api_key_id: int) -> ApiKey:
        """Revoke a key now (a no-op for a revoked key); returns it.

        Raises:
            NotFoundError: No such key visible to this unit of work.
        """
        check_id(api_key_id, "api_key_id")
        stmt = (
            update(ApiKey)
            .where(ApiKey.id == api_key_id)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
            .returning(ApiKey)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        rows = await self._scalars(stmt)
        if not rows:
            raise NotFoundError("ApiKey", api_key_id)
        return rows[0]

    async def lookup(self, api_key: str) -> AuthenticatedKey | None:
        """The live key matching ``api_key`` (not revoked, not expired), or ``None``.

        Runs ``app_authenticate_api_key(digest)``: the lookup is by digest (unique index),
        the stored digest is compared again with :func:`hmac.compare_digest`, and on
        success the transaction is scoped to the key's client (``app.client_id``), unless
        it is already scoped to another client, in which case nothing matches.
        """
        if not well_formed_api_key(api_key):
            return None
        digest = self.digest(api_key)
        rows = (await self._execute(_AUTHENTICATE, {"digest": digest})).all()
        if not rows:
            return None
        api_key_id, client_id, stored = rows[0]
        if not isinstance(stored, str) or not hmac.compare_digest(stored, digest):
            return None
        return AuthenticatedKey(int(api_key_id), int(client_id))

    async def get_by_prefix(self, key_prefix: str) -> ApiKey | None:
        """The key with this display prefix (``bmap_live_`` + 8 characters), or ``None``."""
        prefix: object = key_prefix
        if not isinstance(prefix, str) or len(prefix) != API_KEY_PREFIX_LENGTH:
            return None
        rows = await self._scalars(select(ApiKey).where(ApiKey.key_prefix == key_prefix))
        return rows[0] if rows else None
