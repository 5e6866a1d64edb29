"""Least-privilege PostgreSQL roles for the library, provisioned idempotently.

Five roles (RELIABILITY.md §3.5), cluster-wide, with grants per database:

========================  =====  ==========================================================
role                      login  what it may do
========================  =====  ==========================================================
``app_owner``             no     owns the schema objects; nobody logs in as it
``app_migrator``          yes    member of ``app_owner``; its sessions start as
                                 ``app_owner`` (``ALTER ROLE … SET role``), so everything a
                                 migration creates is owned by ``app_owner``; used only by
                                 ``alembic upgrade`` (``MIGRATION_DATABASE_URL``)
``app_rw``                yes    ``SELECT/INSERT/UPDATE/DELETE`` on tables, ``USAGE`` on
                                 sequences; no DDL, no ``TRUNCATE``, not the owner, not a
                                 member of it, no ``BYPASSRLS``; ``audit_log`` is
                                 append-only
``app_ro``                yes    ``SELECT`` only, ``default_transaction_read_only=on``
``app_worker``            yes    as ``app_rw``; the row-level security policies of
                                 migration ``0002`` let it (only it) see every client's
                                 alerts, webhooks and deliveries — never client rows or
                                 API keys
========================  =====  ==========================================================

Default privileges (``ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA …``) make a
table created by a later migration usable by the application roles at once.  The
application roles carry server-side timeouts as role defaults
(``statement_timeout``, ``lock_timeout``, ``idle_in_transaction_session_timeout``), which
also hold behind pgbouncer, where startup parameters are dropped.

:func:`provision_roles` is idempotent: roles that exist are brought back to the
attributes above (a stray ``GRANT app_owner TO app_rw`` is revoked) and grants are
re-applied, so it is safe to run from every deploy and on every database of a cluster.
Passwords are optional (``None`` leaves a role's password alone); they are sent to the
server as SCRAM-SHA-256 verifiers computed here, so the plaintext never reaches the server,
its logs or ``pg_stat_activity``.  Run it as a superuser, or as a role with ``CREATEROLE``
that owns the database.  Then migrate as ``app_migrator`` and run the application as
``app_rw``/``app_ro``/``app_worker`` — never as a superuser, which bypasses row-level
security.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import ssl
import stringprep
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db.errors import DatabaseError, translate_error

__all__ = [
    "APP_ROLES",
    "LOGIN_ROLES",
    "MIGRATOR_ROLE",
    "OWNER_ROLE",
    "READ_ONLY_ROLE",
    "READ_WRITE_ROLE",
    "ROLES",
    "WORKER_ROLE",
    "ProvisionReport",
    "RoleProvisioningError",
    "aprovision_roles",
    "provision_roles",
    "scram_sha256_verifier",
]

T = TypeVar("T")

OWNER_ROLE: Final = "app_owner"
MIGRATOR_ROLE: Final = "app_migrator"
READ_WRITE_ROLE: Final = "app_rw"
READ_ONLY_ROLE: Final = "app_ro"
WORKER_ROLE: Final = "app_worker"
"""The worker role; migration ``0002``'s policies recognise it by this name."""

ROLES: Final = (OWNER_ROLE, MIGRATOR_ROLE, READ_WRITE_ROLE, READ_ONLY_ROLE, WORKER_ROLE)
LOGIN_ROLES: Final = (MIGRATOR_ROLE, READ_WRITE_ROLE, READ_ONLY_ROLE, WORKER_ROLE)
APP_ROLES: Final = (READ_WRITE_ROLE, READ_ONLY_ROLE, WORKER_ROLE)
_WRITERS: Final = (READ_WRITE_ROLE, WORKER_ROLE)

APP_ROLE_SETTINGS: Final = {
    "statement_timeout": "15s",
    "lock_timeout": "3s",
    "idle_in_transaction_session_timeout": "30s",
}
"""Role defaults of the application roles (RELIABILITY.md §6)."""

_ROLE_SETTINGS: Final[dict[str, dict[str, str]]] = {
    MIGRATOR_ROLE: {"role": OWNER_ROLE, "lock_timeout": "3s", "statement_timeout": "0"},
    READ_WRITE_ROLE: APP_ROLE_SETTINGS,
    READ_ONLY_ROLE: {**APP_ROLE_SETTINGS, "default_transaction_read_only": "on"},
    WORKER_ROLE: APP_ROLE_SETTINGS,
}

_SCRAM_ITERATIONS: Final = 4096
_LOCK_KEY: Final = 0x726F6C6573  # "roles": concurrent provisioners take turns
_ASYNC_DRIVER: Final = "postgresql+asyncpg"


class RoleProvisioningError(DatabaseError):
    """Provisioning failed, or left a role with more power than it should have."""


@dataclass(frozen=True, slots=True)
class ProvisionReport:
    """What :func:`provision_roles` did.

    Attributes:
        database: The database whose grants were applied.
        schema: The schema whose grants and default privileges were applied.
        created: Roles created by this run.
        existing: Roles that already existed (their attributes were re-applied).
        passwords_set: Roles whose password was (re)set.
        adopted: Objects whose ownership moved to ``app_owner`` (``adopt_existing``).
    """

    database: str
    schema: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    passwords_set: list[str] = field(default_factory=list)
    adopted: int = 0


def _ident(name: str) -> str:
    """A quoted SQL identifier."""
    if not name or "\x00" in name:
        raise ValueError("identifiers must be non-empty text without NUL bytes")
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    """A quoted SQL string literal (standard_conforming_strings)."""
    if "\x00" in value:
        raise ValueError("literals must not contain NUL bytes")
    return "'" + value.replace("'", "''") + "'"


def _saslprep(password: str) -> str:
    """RFC 4013 SASLprep as PostgreSQL and asyncpg apply it; the input if prohibited."""
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in password
        if not stringprep.in_table_b1(ch)
    )
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized:
        return password
    prohibited = (
        stringprep.in_table_a1,
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    if any(check(ch) for ch in normalized for check in prohibited):
        return password
    if any(stringprep.in_table_d1(ch) for ch in normalized) and (
        any(stringprep.in_table_d2(ch) for ch in normalized)
        or not stringprep.in_table_d1(normalized[0])
        or not stringprep.in_table_d1(normalized[-1])
    ):
        return password
    return normalized


def scram_sha256_verifier(
    password: str | SecretStr, *, salt: bytes | None = None, iterations: int = _SCRAM_ITERATIONS
) -> str:
    """The ``SCRAM-SHA-256$…`` verifier PostgreSQL stores for ``password``.

    ``ALTER ROLE … PASSWORD '<verifier>'`` sets the password without the plaintext ever
    reaching the server (what ``psql``'s ``\\password`` does).
    """
    plain = password.get_secret_value() if isinstance(password, SecretStr) else password
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(plain).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _as_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        raise RoleProvisioningError("the admin URL is not a valid database URL") from None
    if parsed.get_backend_name() != "postgresql":
        raise RoleProvisioningError("the admin URL must be a postgresql:// URL")
    return parsed.set(drivername=_ASYNC_DRIVER)


@dataclass(frozen=True, slots=True)
class _Step:
    label: str
    sql: str
    secret: bool = False
    ignore_sqlstates: frozenset[str] = frozenset()


async def _run(conn: AsyncConnection, step: _Step) -> bool:
    """Run one statement; False when it failed with an ignorable SQLSTATE."""
    try:
        await conn.exec_driver_sql(step.sql)
    except Exception as exc:
        translated = translate_error(exc)
        state = getattr(translated, "sqlstate", None)
        if state in step.ignore_sqlstates:
            return False
        detail = str(translated) if translated is not exc else type(exc).__name__
        error = RoleProvisioningError(f"{step.label} failed: {detail}", sqlstate=state)
        if step.secret:
            # The statement text carries a password verifier: keep it out of tracebacks.
            raise error from None
        raise error from exc
    return True


def _role_steps(name: str, login: bool, verifier: str | None, is_superuser: bool) -> list[_Step]:
    attributes = ["LOGIN" if login else "NOLOGIN", "INHERIT", "NOCREATEDB", "NOCREATEROLE"]
    if is_superuser:
        # Only a superuser may even mention these; CREATE ROLE defaults them to off.
        attributes += ["NOSUPERUSER", "NOREPLICATION", "NOBYPASSRLS"]
    steps = [_Step(f"ALTER ROLE {name}", f"ALTER ROLE {_ident(name)} WITH {' '.join(attributes)}")]
    if verifier is not None:
        steps.append(
            _Step(
                f"setting the password of {name}",
                f"ALTER ROLE {_ident(name)} PASSWORD {_literal(verifier)}",
                secret=True,
            )
        )
    for setting, value in _ROLE_SETTINGS.get(name, {}).items():
        steps.append(
            _Step(
                f"ALTER ROLE {name} SET {setting}",
                f"ALTER ROLE {_ident(name)} SET {setting} = {_literal(value)}",
            )
        )
    return steps


async def _scalar_list(conn: AsyncConnection, sql: str, **params: object) -> list[Any]:
    return list((await conn.execute(text(sql), params)).scalars())


async def _provision_cluster(
    conn: AsyncConnection, verifiers: Mapping[str, str], report: ProvisionReport
) -> None:
    # Concurrent GRANT/ALTER ROLE on one catalog row fail with "tuple concurrently updated".
    await conn.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_KEY})")
    try:
        await _provision_roles(conn, verifiers, report)
    finally:
        await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})")


async def _provision_roles(
    conn: AsyncConnection, verifiers: Mapping[str, str], report: ProvisionReport
) -> None:
    is_superuser = bool(
        (
            await conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
        ).scalar_one()
    )
    present = set(
        await _scalar_list(
            conn, "SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)", names=list(ROLES)
        )
    )
    for name in ROLES:
        if name in present:
            report.existing.append(name)
            continue
        step = _Step(
            f"CREATE ROLE {name}",
            f"CREATE ROLE {_ident(name)}",
            ignore_sqlstates=frozenset({"42710"}),  # created meanwhile by another run
        )
        (report.created if await _run(conn, step) else report.existing).append(name)
    for name in ROLES:
        for step in _role_steps(name, name in LOGIN_ROLES, verifiers.get(name), is_superuser):
            await _run(conn, step)
    report.passwords_set.extend(name for name in ROLES if name in verifiers)
    await _run(
        conn,
        _Step(
            f"GRANT {OWNER_ROLE} TO {MIGRATOR_ROLE}",
            f"GRANT {_ident(OWNER_ROLE)} TO {_ident(MIGRATOR_ROLE)}",
        ),
    )
    # Undo any membership that would let an application role act as the owner.
    strays = await _scalar_list(
        conn,
        "SELECT m.rolname || '/' || g.rolname FROM pg_auth_members AS a "
        "JOIN pg_roles AS m ON m.oid = a.member JOIN pg_roles AS g ON g.oid = a.roleid "
        "WHERE m.rolname = ANY(:members) AND g.rolname = ANY(:groups)",
        members=list(APP_ROLES),
        groups=[OWNER_ROLE, MIGRATOR_ROLE],
    )
    for stray in strays:
        member, _, group = str(stray).partition("/")
        await _run(
            conn,
            _Step(f"REVOKE {group} FROM {member}", f"REVOKE {_ident(group)} FROM {_ident(member)}"),
        )


async def _provision_database(
    conn: AsyncConnection, database: str, schema: str, *, adopt_existing: bool
) -> int:
    db, sc = _ident(database), _ident(schema)
    owner = _ident(OWNER_ROLE)
    logins = ", ".join(_ident(r) for r in LOGIN_ROLES)
    apps = ", ".join(_ident(r) for r in APP_ROLES)
    writers = ", ".join(_ident(r) for r in _WRITERS)
    reader = _ident(READ_ONLY_ROLE)
    default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {sc}"
    await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
    steps = [
        _Step("REVOKE ALL ON DATABASE", f"REVOKE ALL ON DATABASE {db} FROM PUBLIC"),
        _Step("GRANT CONNECT", f"GRANT CONNECT ON DATABASE {db} TO {logins}"),
        _Step("REVOKE CREATE ON SCHEMA", f"REVOKE CREATE ON SCHEMA {sc} FROM PUBLIC"),
        _Step("GRANT schema to the owner", f"GRANT USAGE, CREATE ON SCHEMA {sc} TO {owner}"),
        _Step("GRANT USAGE ON SCHEMA", f"GRANT USAGE ON SCHEMA {sc} TO {apps}"),
        _Step(
            "default privileges on tables (writers)",
            f"{default} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {writers}",
        ),
        _Step(
            "default privileges on tables (reader)", f"{default} GRANT SELECT ON TABLES TO {reader}"
        ),
        _Step(
            "default privileges on sequences",
            f"{default} GRANT USAGE, SELECT ON SEQUENCES TO {writers}",
        ),
    ]
    for step in steps:
        await _run(conn, step)
    adopted = await _adopt(conn, schema) if adopt_existing else 0
    grants = [
        _Step(
            "GRANT on existing tables (writers)",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {sc} TO {writers}",
        ),
        _Step(
            "GRANT on existing tables (reader)",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {sc} TO {reader}",
        ),
        _Step(
            "GRANT on existing sequences",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {sc} TO {writers}",
        ),
    ]
    for step in grants:
        await _run(conn, step)
    tables = set(
        await _scalar_list(
            conn,
            "SELECT tablename FROM pg_tables WHERE schemaname = :schema "
            "AND tablename IN ('audit_log', 'alembic_version')",
            schema=schema,
        )
    )
    if "audit_log" in tables:
        await _run(
            conn,
            _Step(
                "audit_log append-only",
                f"REVOKE UPDATE, DELETE, TRUNCATE ON {sc}.audit_log FROM {writers}",
            ),
        )
    if "alembic_version" in tables:
        await _run(
            conn,
            _Step(
                "alembic_version read-only",
                f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {sc}.alembic_version FROM {apps}",
            ),
        )
    return adopted


async def _adopt(conn: AsyncConnection, schema: str) -> int:
    """Give ``app_owner`` the tables, views, free sequences and functions of ``schema``."""
    rows = (
        await conn.execute(
            text(
                "SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' "
                "WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.relname "
                "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
                "AND pg_get_userbyid(c.relowner) <> :owner "
                "AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = c.oid "
                "AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))"
            ),
            {"schema": schema, "owner": OWNER_ROLE},
        )
    ).all()
    functions = await _scalar_list(
        conn,
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
        "JOIN pg_namespace AS n ON n.oid = p.pronamespace "
        "WHERE n.nspname = :schema AND pg_get_userbyid(p.proowner) <> :owner",
        schema=schema,
        owner=OWNER_ROLE,
    )
    owner = _ident(OWNER_ROLE)
    count = 0
    for kind, name in rows:
        qualified = f"{_ident(schema)}.{_ident(str(name))}"
        await _run(conn, _Step(f"adopting {name}", f"ALTER {kind} {qualified} OWNER TO {owner}"))
        count += 1
    for signature in functions:
        await _run(
            conn, _Step(f"adopting {signature}", f"ALTER FUNCTION {signature} OWNER TO {owner}")
        )
        count += 1
    return count


async def _verify(conn: AsyncConnection) -> None:
    """Refuse to finish while an application role could bypass the rules."""
    rows = (
        await conn.execute(
            text(
                "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, "
                "rolreplication, pg_has_role(rolname, :owner, 'MEMBER') "
                "FROM pg_roles WHERE rolname = ANY(:names)"
            ),
            {"owner": OWNER_ROLE, "names": [*APP_ROLES, MIGRATOR_ROLE]},
        )
    ).all()
    problems = []
    for name, superuser, bypass, createrole, createdb, replication, is_owner in rows:
        powers = [
            label
            for label, flag in (
                ("SUPERUSER", superuser),
                ("BYPASSRLS", bypass),
                ("CREATEROLE", createrole),
                ("CREATEDB", createdb),
                ("REPLICATION", replication),
                (f"member of {OWNER_ROLE}", is_owner and name != MIGRATOR_ROLE),
            )
            if flag
        ]
        if powers:
            problems.append(f"{name}: {', '.join(powers)}")
    if problems:
        raise RoleProvisioningError(
            "roles still hold powers they must not have (needs a superuser to remove): "
            + "; ".join(problems)
        )


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
    _ident(database)
    _ident(schema)
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

    await on(base, lambda conn: _provision_cluster(conn, verifiers, report), atomic=False)
    adopted = await on(
        base.set(database=database),
        lambda conn: _provision_database(conn, database, schema, adopt_existing=adopt_existing),
        atomic=True,
    )
    await on(base, _verify, atomic=False)
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
