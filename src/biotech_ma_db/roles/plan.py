"""The roles, their attributes and the grants: the statements provisioning runs.

Nothing here touches a connection: each function returns the :class:`Step` (a labelled
statement) or steps that :mod:`.apply` runs, with every name quoted by :func:`ident`
and every value by :func:`literal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "APP_ROLES",
    "APP_ROLE_SETTINGS",
    "LOGIN_ROLES",
    "MIGRATOR_ROLE",
    "OWNER_ROLE",
    "READ_ONLY_ROLE",
    "READ_WRITE_ROLE",
    "ROLES",
    "WORKER_ROLE",
    "Step",
    "adopt_function",
    "adopt_relation",
    "create_role",
    "database_grants",
    "existing_object_grants",
    "grant_owner_to_migrator",
    "ident",
    "literal",
    "protect_alembic_version",
    "protect_audit_log",
    "revoke_membership",
    "role_steps",
]

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


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of provisioning.

    Attributes:
        label: What the statement does, for the error message (never the SQL itself).
        sql: The statement.
        secret: The statement carries a password verifier: keep it out of tracebacks.
        ignore_sqlstates: Failures that mean "already done", not an error.
    """

    label: str
    sql: str
    secret: bool = False
    ignore_sqlstates: frozenset[str] = frozenset()


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    if not name or "\x00" in name:
        raise ValueError("identifiers must be non-empty text without NUL bytes")
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A quoted SQL string literal (standard_conforming_strings)."""
    if "\x00" in value:
        raise ValueError("literals must not contain NUL bytes")
    return "'" + value.replace("'", "''") + "'"


def create_role(name: str) -> Step:
    """``CREATE ROLE``; a role created meanwhile by another run is not an error."""
    return Step(
        f"CREATE ROLE {name}",
        f"CREATE ROLE {ident(name)}",
        ignore_sqlstates=frozenset({"42710"}),
    )


def role_steps(name: str, *, verifier: str | None, is_superuser: bool) -> list[Step]:
    """Bring role ``name`` to its attributes, password (if given) and role defaults."""
    login = name in LOGIN_ROLES
    attributes = ["LOGIN" if login else "NOLOGIN", "INHERIT", "NOCREATEDB", "NOCREATEROLE"]
    if is_superuser:
        # Only a superuser may even mention these; CREATE ROLE defaults them to off.
        attributes += ["NOSUPERUSER", "NOREPLICATION", "NOBYPASSRLS"]
    steps = [Step(f"ALTER ROLE {name}", f"ALTER ROLE {ident(name)} WITH {' '.join(attributes)}")]
    if verifier is not None:
        steps.append(
            Step(
                f"setting the password of {name}",
                f"ALTER ROLE {ident(name)} PASSWORD {literal(verifier)}",
                secret=True,
            )
        )
    for setting, value in _ROLE_SETTINGS.get(name, {}).items():
        steps.append(
            Step(
                f"ALTER ROLE {name} SET {setting}",
                f"ALTER ROLE {ident(name)} SET {setting} = {literal(value)}",
            )
        )
    return steps


def grant_owner_to_migrator() -> Step:
    """Make ``app_migrator`` a member of ``app_owner``."""
    return Step(
        f"GRANT {OWNER_ROLE} TO {MIGRATOR_ROLE}",
        f"GRANT {ident(OWNER_ROLE)} TO {ident(MIGRATOR_ROLE)}",
    )


def revoke_membership(group: str, member: str) -> Step:
    """Undo a membership of ``member`` in ``group``."""
    return Step(f"REVOKE {group} FROM {member}", f"REVOKE {ident(group)} FROM {ident(member)}")


def database_grants(database: str, schema: str) -> list[Step]:
    """Connect and schema rights, and the default privileges of later objects."""
    db, sc = ident(database), ident(schema)
    owner = ident(OWNER_ROLE)
    logins = ", ".join(ident(r) for r in LOGIN_ROLES)
    apps = ", ".join(ident(r) for r in APP_ROLES)
    writers = ", ".join(ident(r) for r in _WRITERS)
    reader = ident(READ_ONLY_ROLE)
    default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {sc}"
    return [
        Step("REVOKE ALL ON DATABASE", f"REVOKE ALL ON DATABASE {db} FROM PUBLIC"),
        Step("GRANT CONNECT", f"GRANT CONNECT ON DATABASE {db} TO {logins}"),
        Step("REVOKE CREATE ON SCHEMA", f"REVOKE CREATE ON SCHEMA {sc} FROM PUBLIC"),
        Step("GRANT schema to the owner", f"GRANT USAGE, CREATE ON SCHEMA {sc} TO {owner}"),
        Step("GRANT USAGE ON SCHEMA", f"GRANT USAGE ON SCHEMA {sc} TO {apps}"),
        Step(
            "default privileges on tables (writers)",
            f"{default} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {writers}",
        ),
        Step(
            "default privileges on tables (reader)", f"{default} GRANT SELECT ON TABLES TO {reader}"
        ),
        Step(
            "default privileges on sequences",
            f"{default} GRANT USAGE, SELECT ON SEQUENCES TO {writers}",
        ),
    ]


def existing_object_grants(schema: str) -> list[Step]:
    """The application roles' rights on the tables and sequences already in ``schema``."""
    sc = ident(schema)
    writers = ", ".join(ident(r) for r in _WRITERS)
    reader = ident(READ_ONLY_ROLE)
    return [
        Step(
            "GRANT on existing tables (writers)",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {sc} TO {writers}",
        ),
        Step(
            "GRANT on existing tables (reader)",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {sc} TO {reader}",
        ),
        Step(
            "GRANT on existing sequences",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {sc} TO {writers}",
        ),
    ]


def protect_audit_log(schema: str) -> Step:
    """Make ``audit_log`` append-only for the writers."""
    writers = ", ".join(ident(r) for r in _WRITERS)
    return Step(
        "audit_log append-only",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {ident(schema)}.audit_log FROM {writers}",
    )


def protect_alembic_version(schema: str) -> Step:
    """Make ``alembic_version`` read-only for the application roles."""
    apps = ", ".join(ident(r) for r in APP_ROLES)
    return Step(
        "alembic_version read-only",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {ident(schema)}.alembic_version FROM {apps}",
    )


def adopt_relation(schema: str, kind: str, name: str) -> Step:
    """Give ``app_owner`` the table, view or sequence ``name`` (``kind`` as in ``ALTER``)."""
    qualified = f"{ident(schema)}.{ident(name)}"
    return Step(f"adopting {name}", f"ALTER {kind} {qualified} OWNER TO {ident(OWNER_ROLE)}")


def adopt_function(signature: str) -> Step:
    """Give ``app_owner`` the function ``signature`` (a ``regprocedure`` text)."""
    return Step(f"adopting {signature}", f"ALTER FUNCTION {signature} OWNER TO {ident(OWNER_ROLE)}")
