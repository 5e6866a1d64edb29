"""Provisioning's work on one connection: the cluster's roles, one database's grants.

Each function reads what the catalogs hold, then runs the statements of :mod:`.plan`
through :func:`run`, which turns a failure into a
:class:`~.report.RoleProvisioningError` that names the step, never its SQL.  Concurrent
provisioners take turns on an advisory lock: concurrent ``GRANT``/``ALTER ROLE`` on one
catalog row fail with "tuple concurrently updated".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from biotech_ma_db.errors import translate_error
from biotech_ma_db.roles.plan import (
    APP_ROLES,
    MIGRATOR_ROLE,
    OWNER_ROLE,
    ROLES,
    Step,
    adopt_function,
    adopt_relation,
    create_role,
    database_grants,
    existing_object_grants,
    grant_owner_to_migrator,
    protect_alembic_version,
    protect_audit_log,
    revoke_membership,
    role_steps,
)
from biotech_ma_db.roles.report import ProvisionReport, RoleProvisioningError

__all__ = ["provision_cluster", "provision_database", "run", "verify"]

_LOCK_KEY: Final = 0x726F6C6573  # "roles": concurrent provisioners take turns


async def run(conn: AsyncConnection, step: Step) -> bool:
    """Run one statement; False when it failed with an ignorable SQLSTATE.

    Raises:
        RoleProvisioningError: Naming the step; for a secret step, without its cause.
    """
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


async def _scalar_list(conn: AsyncConnection, sql: str, **params: object) -> list[Any]:
    return list((await conn.execute(text(sql), params)).scalars())


async def provision_cluster(
    conn: AsyncConnection, verifiers: Mapping[str, str], report: ProvisionReport
) -> None:
    """Create or repair the cluster-wide roles, under the advisory lock (autocommit)."""
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
        (report.created if await run(conn, create_role(name)) else report.existing).append(name)
    for name in ROLES:
        for step in role_steps(name, verifier=verifiers.get(name), is_superuser=is_superuser):
            await run(conn, step)
    report.passwords_set.extend(name for name in ROLES if name in verifiers)
    await run(conn, grant_owner_to_migrator())
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
        await run(conn, revoke_membership(group, member))


async def provision_database(
    conn: AsyncConnection, database: str, schema: str, *, adopt_existing: bool
) -> int:
    """Apply the grants on ``database``/``schema`` (in a transaction); how many adopted."""
    await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
    for step in database_grants(database, schema):
        await run(conn, step)
    adopted = await _adopt(conn, schema) if adopt_existing else 0
    for step in existing_object_grants(schema):
        await run(conn, step)
    tables = set(
        await _scalar_list(
            conn,
            "SELECT tablename FROM pg_tables WHERE schemaname = :schema "
            "AND tablename IN ('audit_log', 'alembic_version')",
            schema=schema,
        )
    )
    if "audit_log" in tables:
        await run(conn, protect_audit_log(schema))
    if "alembic_version" in tables:
        await run(conn, protect_alembic_version(schema))
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
                # A sequence owned by a column follows its table; a partition does not
                # follow its parent, so only sequences are skipped on their dependency.
                "AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend AS d "
                "WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass "
                "AND d.deptype IN ('a', 'i')))"
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
    count = 0
    for kind, name in rows:
        await run(conn, adopt_relation(schema, kind, str(name)))
        count += 1
    for signature in functions:
        await run(conn, adopt_function(signature))
        count += 1
    return count


async def verify(conn: AsyncConnection) -> None:
    """Refuse to finish while an application role could bypass the rules.

    Raises:
        RoleProvisioningError: Listing each role and the powers it still holds.
    """
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
