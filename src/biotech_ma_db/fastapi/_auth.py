"""API-key authentication from a header, and units of work scoped to the key's client.

The key is checked with :meth:`~biotech_ma_db.repositories.ClientRepository.authenticate`
in a short unit of work of its own (it stamps the key's ``last_used_at``), which is closed
before the handler's unit of work opens: a request holds one pooled connection at a time.
The handler's unit of work is ``db.unit_of_work(client_id=client.id)``, so row-level
security shows it, and lets it write, that client's rows only.

A missing, malformed, unknown, revoked or expired key, or one whose client is inactive,
is answered ``401`` with ``WWW-Authenticate: APIKey``; the answer does not say which.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependencies'
# ``Annotated[..., Security(scheme)]`` parameters at runtime, and ``scheme`` is a closure
# variable that a string annotation could not reach.

from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Security, status
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader

from biotech_ma_db.database import Database
from biotech_ma_db.fastapi._dependencies import request_unit_of_work
from biotech_ma_db.fastapi._lifespan import get_database
from biotech_ma_db.models import Client
from biotech_ma_db.unit_of_work import UnitOfWork

__all__ = [
    "DEFAULT_API_KEY_HEADER",
    "ApiKeyAuth",
    "ClientDep",
    "ClientUnitOfWorkDep",
    "ReadOnlyClientUnitOfWorkDep",
    "api_key_auth",
]

DEFAULT_API_KEY_HEADER: Final = "X-API-Key"
"""The header :data:`api_key_auth` reads the key from."""


class ApiKeyAuth:
    """Dependencies that authenticate an API key from a header.

    ::

        auth = ApiKeyAuth("X-Fund-Key")
        FundUnitOfWork = Annotated[UnitOfWork, auth.unit_of_work]

        @app.get("/alerts")
        async def alerts(uow: FundUnitOfWork, client: Annotated[Client, auth.client]): ...

    Within one request the key is checked once, however many of these a handler and its
    dependencies ask for (FastAPI caches ``client`` per request).

    Args:
        header: The request header that carries the key.
        scheme_name: Name of the security scheme in the OpenAPI document.

    Attributes:
        header: The header the key is read from.
        scheme: The ``APIKeyHeader`` (it puts the scheme in the OpenAPI document).
        client: ``Depends`` giving the authenticated :class:`~biotech_ma_db.models.Client`.
        unit_of_work: ``Depends`` giving a unit of work scoped to that client, committed
            when the handler returns (``actor`` is ``"client:<id>"``).
        read_only_unit_of_work: ``Depends`` giving a read-only unit of work scoped to it.
    """

    def __init__(self, header: str = DEFAULT_API_KEY_HEADER, *, scheme_name: str | None = None):
        scheme = APIKeyHeader(
            name=header,
            scheme_name=scheme_name,
            description="An API key issued to the client (bmap_live_...).",
            auto_error=False,
        )

        async def authenticated_client(
            database: Annotated[Database, Depends(get_database)],
            api_key: Annotated[str | None, Security(scheme)],
        ) -> Client:
            return await authenticate(database, api_key)

        async def client_unit_of_work(
            database: Annotated[Database, Depends(get_database)],
            client: Annotated[Client, Depends(authenticated_client)],
        ) -> AsyncIterator[UnitOfWork]:
            async with request_unit_of_work(
                database, client_id=client.id, actor=f"client:{client.id}"
            ) as uow:
                yield uow

        async def client_read_only_unit_of_work(
            database: Annotated[Database, Depends(get_database)],
            client: Annotated[Client, Depends(authenticated_client)],
        ) -> AsyncIterator[UnitOfWork]:
            async with request_unit_of_work(database, client_id=client.id, read_only=True) as uow:
                yield uow

        self.header = header
        self.scheme = scheme
        self.client: DependsParam = Depends(authenticated_client)
        self.unit_of_work: DependsParam = Depends(client_unit_of_work, scope="function")
        self.read_only_unit_of_work: DependsParam = Depends(
            client_read_only_unit_of_work, scope="function"
        )

    def __repr__(self) -> str:
        return f"ApiKeyAuth(header={self.header!r})"


async def authenticate(database: Database, api_key: str | None) -> Client:
    """The active client owning ``api_key``, or a ``401`` ``HTTPException``."""
    if api_key:
        async with database.unit_of_work() as uow:
            client = await uow.clients.authenticate(api_key)
            if client is not None:
                await uow.commit()  # keeps the key's last_used_at stamp
                return client
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API key",
        headers={"WWW-Authenticate": "APIKey"},
    )


api_key_auth = ApiKeyAuth()
"""The default authentication: the key in the ``X-API-Key`` header."""

ClientDep = Annotated[Client, api_key_auth.client]
"""A handler parameter: the client whose key the request carries (401 without one)."""

ClientUnitOfWorkDep = Annotated[UnitOfWork, api_key_auth.unit_of_work]
"""A handler parameter: a unit of work scoped to the request's client (row-level security)."""

ReadOnlyClientUnitOfWorkDep = Annotated[UnitOfWork, api_key_auth.read_only_unit_of_work]
"""A handler parameter: a read-only unit of work scoped to the request's client."""
