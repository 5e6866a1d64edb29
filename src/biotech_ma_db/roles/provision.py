"""The entry points: :func:`provision_roles` and its async form :func:`aprovision_roles`.

They check the arguments (passwords become SCRAM verifiers here, before any connection),
then open one short-lived admin connection per phase: the cluster's roles (autocommit,
under an advisory lock), the database's grants (one transaction), and the final check
that no application role kept a power it must not have.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from pydantic import SecretStr
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db.errors import translate_error
from biotech_ma_db.roles.apply import provision_cluster, provision_database, verify
from biotech_ma_db.roles.plan import LOGIN_ROLES, ident
from biotech_ma_db.roles.report import ProvisionReport, RoleProvisioningError
from biotech_ma_db.roles.scram import scram_sha256_verifier

__all__ = ["aprovision_roles", "provision_roles"]

T = TypeVar("T")

_ASYNC_DRIVER: Final = "postgresql+asyncpg"


def _as_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        raise RoleProvisioningError("the admin URL is not a valid database URL") from None
    if parsed.get_backend_name() != "postgresql":
        raise RoleProvisioningError("the admin URL must be a postgresql:// URL")
    return parsed.set(drivername=_ASYNC_DRIVER)


def _verifiers(passwords: Mapping[str, str | SecretStr] | None) -> dict[str, str]:
    """The SCRAM verifiers of ``passwords``, by login role."""
    verifiers: dict[str, str] = {}
    for name, password in (passwords or {}).items():
        if name not in LOGIN_ROLES:
            raise RoleProvisioningError(
                f"passwords are for the login roles {', '.join(LOGIN_ROLES)}; got {name[:32]!r}"
            )
        plain: object = password.get_secret_value() if isinstance(password, SecretStr) else password
        if not isinstance(plain, str) or not plain:
            raise RoleProvisioningError(f"the password of {name} must be non-empty text")
        verifiers[name] = scram_sha256_verifier(plain)
    return verifiers


async def aprovision_roles(
    admin_url: str | URL,
    *,
    database: str,
    schema: str = "public",
    passwords: Mapping[str, str | SecretStr] | None = None,
    adopt_existing: bool = False,
    ssl_context: ssl.SSLContext | str | bool | None = None,
) -> ProvisionReport:
    """Async :func:`provision_roles`."""
    verifiers = _verifiers(passwords)
    ident(database)
    ident(schema)
    base = _as_url(admin_url)
    connect_args: dict[str, Any] = {} if ssl_context is None else {"ssl": ssl_context}
    report = ProvisionReport(database=database, schema=schema)

    async def on(url: URL, work: Callable[[AsyncConnection], Awaitable[T]], *, atomic: bool) -> T:
        engine = create_async_engine(
            url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args=connect_args,
            isolation_level="READ COMMITTED" if atomic else "AUTOCOMMIT",
        )
        try:
            async with engine.connect() as conn:
                if not atomic:
                    return await work(conn)
                async with conn.begin():
                    return await work(conn)
        except RoleProvisioningError:
            raise
        except Exception as exc:
            translated = translate_error(exc)
            detail = str(translated) if translated is not exc else type(exc).__name__
            raise RoleProvisioningError(f"provisioning failed: {detail}") from exc
        finally:
            await engine.dispose()

    await on(base, lambda conn: provision_cluster(conn, verifiers, report), atomic=False)
    adopted = await on(
        base.set(database=database),
        lambda conn: provision_database(conn, database, schema, adopt_existing=adopt_existing),
        atomic=True,
    )
    await on(base, verify, atomic=False)
    return ProvisionReport(
        database=database,
        schema=schema,
        created=report.created,
        existing=report.existing,
        passwords_set=report.passwords_set,
        adopted=adopted,
    )


def provision_roles(
    admin_url: str | URL,
    *,
    database: str,
    schema: str = "public",
    passwords: Mapping[str, str | SecretStr] | None = None,
    adopt_existing: bool = False,
    ssl_context: ssl.SSLContext | str | bool | None = None,
) -> ProvisionReport:
    """Create or repair the library's roles and apply their grants on ``database``.

    Safe to run again at any time (and on every database of a cluster): the roles are
    cluster-wide, the grants and default privileges are per database and schema.
    Synchronous; runs on a private event loop in a worker thread, so it may be called
    from anywhere (``await asyncio.to_thread(provision_roles, ...)`` inside a loop).

    Args:
        admin_url: A superuser (or ``CREATEROLE`` owner of ``database``) URL; its own
            database is used for the cluster-wide steps.
        database: The application database to grant on.
        schema: The schema the migrations create objects in.
        passwords: Passwords of login roles to (re)set, by role name; others are left
            alone.  Sent as SCRAM verifiers, never in clear.
        adopt_existing: Give ``app_owner`` the objects of ``schema`` created by another
            role (a database migrated before the roles existed).
        ssl_context: asyncpg's ``ssl`` argument for the admin connections.

    Returns:
        What was created and changed.

    Raises:
        RoleProvisioningError: A step failed (no password or verifier in the message or
            its cause), or a role kept a power it must not have.
    """

    def run() -> ProvisionReport:
        return asyncio.run(
            aprovision_roles(
                admin_url,
                database=database,
                schema=schema,
                passwords=passwords,
                adopt_existing=adopt_existing,
                ssl_context=ssl_context,
            )
        )

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="biotech-ma-db-roles") as pool:
        return pool.submit(run).result()
