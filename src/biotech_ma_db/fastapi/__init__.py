"""FastAPI integration: one ``Database`` per app, one unit of work per request.

Install it with ``pip install 'biotech-ma-db[fastapi]'`` (FastAPI 0.121 or newer)::

    from fastapi import FastAPI
    from biotech_ma_db.fastapi import (
        ClientUnitOfWorkDep, ReadOnlyUnitOfWorkDep, UnitOfWorkDep,
        database_lifespan, install_error_handlers,
    )

    app = FastAPI(lifespan=database_lifespan())     # Database() from the environment
    install_error_handlers(app)                     # typed errors -> 404/409/422/503

    @app.post("/companies", status_code=201)
    async def create(body: NewCompany, uow: UnitOfWorkDep) -> dict[str, int]:
        company = await uow.companies.create(**body.model_dump())
        return {"id": company.id}                   # committed before the response leaves

- :func:`database_lifespan` opens one :class:`~biotech_ma_db.Database` at startup and
  disposes its pool at shutdown; :func:`get_database` (``DatabaseDep``) hands it out.
- ``UnitOfWorkDep`` (:func:`unit_of_work`) commits when the handler returns and rolls back
  when it raises; the commit runs before the response is sent, so a commit that fails
  (a conflict found at ``COMMIT``) is the client's error response, never a silent loss.
  The session goes back to the pool either way.
- :func:`request_unit_of_work` is the body of those dependencies, for writing your own
  (an ``actor`` taken from your authentication, say).
- ``ReadOnlyUnitOfWorkDep`` (:func:`read_only_unit_of_work`): ``db.unit_of_work(read_only=
  True)``, which a configured read replica serves.
- ``ClientUnitOfWorkDep`` / ``ClientDep`` (:class:`ApiKeyAuth`): the API key of the
  ``X-API-Key`` header is checked (401 otherwise), and the unit of work is scoped to its
  client, so row-level security shows the handler that client's rows only.
- :func:`install_error_handlers` maps the library's errors to HTTP answers (see
  :data:`ERROR_ANSWERS`); bodies carry the library's messages, which never hold stored
  values or secrets.

Handlers that take a unit of work must be ``async def``: a unit of work belongs to the task
that entered it, and FastAPI runs plain ``def`` handlers in a thread.
"""

from __future__ import annotations

try:
    import fastapi as _fastapi
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without FastAPI
    raise ImportError(
        "biotech_ma_db.fastapi needs FastAPI, an optional extra: "
        "pip install 'biotech-ma-db[fastapi]'"
    ) from exc

from biotech_ma_db.fastapi._auth import (
    DEFAULT_API_KEY_HEADER,
    ApiKeyAuth,
    ClientDep,
    ClientUnitOfWorkDep,
    ReadOnlyClientUnitOfWorkDep,
    api_key_auth,
)
from biotech_ma_db.fastapi._dependencies import (
    ReadOnlyUnitOfWorkDep,
    UnitOfWorkDep,
    read_only_unit_of_work,
    request_unit_of_work,
    unit_of_work,
)
from biotech_ma_db.fastapi._errors import (
    ERROR_ANSWERS,
    RETRYABLE_ERRORS,
    ErrorAnswer,
    answer_for,
    error_response,
    install_error_handlers,
)
from biotech_ma_db.fastapi._lifespan import (
    STATE_KEY,
    DatabaseDep,
    DatabaseState,
    database_lifespan,
    get_database,
)

del _fastapi

__all__ = [
    "DEFAULT_API_KEY_HEADER",
    "ERROR_ANSWERS",
    "RETRYABLE_ERRORS",
    "STATE_KEY",
    "ApiKeyAuth",
    "ClientDep",
    "ClientUnitOfWorkDep",
    "DatabaseDep",
    "DatabaseState",
    "ErrorAnswer",
    "ReadOnlyClientUnitOfWorkDep",
    "ReadOnlyUnitOfWorkDep",
    "UnitOfWorkDep",
    "answer_for",
    "api_key_auth",
    "database_lifespan",
    "error_response",
    "get_database",
    "install_error_handlers",
    "read_only_unit_of_work",
    "request_unit_of_work",
    "unit_of_work",
]
