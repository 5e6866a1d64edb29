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

The parts: :mod:`.plan` (the roles and the statements that create and grant them),
:mod:`.scram` (the password verifiers), :mod:`.apply` (that work on one connection),
:mod:`.provision` (the entry points and their connections) and :mod:`.report`.
"""

from biotech_ma_db.roles.plan import APP_ROLE_SETTINGS as APP_ROLE_SETTINGS
from biotech_ma_db.roles.plan import (
    APP_ROLES,
    LOGIN_ROLES,
    MIGRATOR_ROLE,
    OWNER_ROLE,
    READ_ONLY_ROLE,
    READ_WRITE_ROLE,
    ROLES,
    WORKER_ROLE,
)
from biotech_ma_db.roles.provision import aprovision_roles, provision_roles
from biotech_ma_db.roles.report import ProvisionReport, RoleProvisioningError
from biotech_ma_db.roles.scram import scram_sha256_verifier

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
