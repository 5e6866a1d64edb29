"""Security: API keys table, encrypted webhook secrets, row-level security per API client.

* ``api_keys``: several keys per client, each stored as a peppered HMAC digest
  (``key_hash``, unique) with its non-secret ``key_prefix`` and ``last4`` for display,
  ``revoked_at``/``expires_at``/``last_used_at``.  Every existing client's key
  (``clients.api_key_prefix``/``api_key_hash``) is copied in, so keys issued before this
  revision keep working.
* ``webhooks.secret_key_version``: the version of the encryption key that sealed
  ``webhooks.secret`` (``NULL``: a secret written before this revision, still plain).
* Row-level security, ENABLEd and FORCEd (the table owner is filtered too), on the tables
  that belong to one API client: ``clients``, ``alerts``, ``webhooks``,
  ``webhook_deliveries`` and ``api_keys``.  The client is the transaction-local setting
  ``app.client_id`` (``set_config('app.client_id', :id, true)``, published by
  ``db.unit_of_work(client_id=...)``).  Fail-closed: with no client set, every policy
  compares with ``NULL``, so no row is visible and every INSERT/UPDATE is rejected by the
  ``WITH CHECK``.
* ``app_is_worker()``: true for members of the role ``app_worker`` (false while that role
  does not exist).  The ``*_worker`` policies let that role, and only it, see and change
  every client's alerts, webhooks and deliveries (the delivery worker and the alert
  evaluator); it still sees no client rows and no API keys.
* ``api_keys_lookup``: a row is readable, whatever the client, by whoever presents its
  digest in ``app.api_key_digest`` (authentication happens before a client is known).
  ``app_authenticate_api_key(digest)`` does exactly that: it finds the live key, scopes
  the transaction to its client (``app.client_id``) unless another client is already set,
  and stamps ``last_used_at`` at most once a minute (not in read-only transactions).
* Table privileges for the application roles, when they exist (``biotech-ma-db
  provision-roles`` creates them; the default privileges it sets cover later tables):
  ``audit_log`` is append-only for ``app_rw``/``app_worker`` and ``alembic_version`` is
  read-only for every application role.

Superusers and roles with ``BYPASSRLS`` are never filtered (PostgreSQL rule): run the
application as ``app_rw``/``app_ro``/``app_worker``, never as a superuser or the owner.

Downgrading drops ``api_keys``: only each client's first key (still in ``clients``) keeps
working.  Webhook secrets sealed by the library stay encrypted in ``webhooks.secret``;
re-seal them as plain text first if ``0001``-era code must read them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLIENT_ID = "NULLIF(current_setting('app.client_id', true), '')::bigint"
API_KEY_DIGEST = "NULLIF(current_setting('app.api_key_digest', true), '')"
IS_WORKER = "(SELECT app_is_worker())"  # an InitPlan: evaluated once per statement

OWN_DELIVERY = f"EXISTS (SELECT 1 FROM webhooks AS w WHERE w.id = webhook_deliveries.webhook_id AND w.client_id = {CLIENT_ID})"  # noqa: S608 — constants only

# table -> (tenant predicate, whether the worker role gets a policy)
POLICIES: dict[str, tuple[str, bool]] = {
    "clients": (f"id = {CLIENT_ID}", False),
    "alerts": (f"client_id = {CLIENT_ID}", True),
    "webhooks": (f"client_id = {CLIENT_ID}", True),
    "webhook_deliveries": (OWN_DELIVERY, True),
    "api_keys": (f"client_id = {CLIENT_ID}", False),
}

APP_ROLES = ("app_rw", "app_ro", "app_worker")
WRITER_ROLES = ("app_rw", "app_worker")

IS_WORKER_FUNCTION = """
CREATE FUNCTION app_is_worker() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_roles AS r
        WHERE r.rolname = 'app_worker'
          AND pg_catalog.pg_has_role(current_user, r.oid, 'USAGE')
    )
$$
"""

AUTHENTICATE_FUNCTION = """
CREATE FUNCTION app_authenticate_api_key(digest text)
RETURNS TABLE (api_key_id bigint, client_id bigint, key_hash text)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
    scope text := NULLIF(current_setting('app.client_id', true), '');
    found_id bigint;
    found_client bigint;
    found_hash text;
BEGIN
    PERFORM set_config('app.api_key_digest', digest, true);
    SELECT k.id, k.client_id, k.key_hash INTO found_id, found_client, found_hash
    FROM api_keys AS k
    WHERE k.key_hash = digest
      AND k.revoked_at IS NULL
      AND (k.expires_at IS NULL OR k.expires_at > now());
    PERFORM set_config('app.api_key_digest', '', true);
    IF found_id IS NULL OR (scope IS NOT NULL AND scope <> found_client::text) THEN
        RETURN;
    END IF;
    PERFORM set_config('app.client_id', found_client::text, true);
    IF current_setting('transaction_read_only') = 'off' THEN
        UPDATE api_keys AS k SET last_used_at = now()
        WHERE k.id = found_id
          AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
    END IF;
    api_key_id := found_id;
    client_id := found_client;
    key_hash := found_hash;
    RETURN NEXT;
END
$$
"""


def _for_existing_roles(roles: Sequence[str], statement: str) -> str:
    """A DO block running ``statement`` (with ``%I`` for the role) for each existing role."""
    names = ", ".join(f"'{role}'" for role in roles)
    return f"""
DO $$
DECLARE role_name text;
BEGIN
    FOR role_name IN SELECT rolname FROM pg_roles WHERE rolname IN ({names}) LOOP
        EXECUTE format('{statement}', role_name);
    END LOOP;
END
$$
"""  # noqa: S608 — built from constants only


def upgrade() -> None:
    """Create ``api_keys`` (filled from ``clients``), the key version column and RLS."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("key_prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("last4", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("change_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_api_keys_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("key_prefix", name=op.f("uq_api_keys_key_prefix")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.CheckConstraint("key_hash ~ '^[0-9a-f]{64}$'", name=op.f("ck_api_keys_key_hash_format")),
        sa.CheckConstraint("last4 ~ '^[A-Za-z0-9_-]{4}$'", name=op.f("ck_api_keys_last4_format")),
    )
    op.create_index(op.f("ix_api_keys_client_id"), "api_keys", ["client_id"])
    op.execute(
        "INSERT INTO api_keys (client_id, key_prefix, key_hash, name, created_at) "
        "SELECT id, api_key_prefix, api_key_hash, 'migrated', created_at FROM clients "
        "WHERE api_key_hash ~ '^[0-9a-f]{64}$'"
    )

    op.add_column("webhooks", sa.Column("secret_key_version", sa.SmallInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_webhooks_secret_key_version_non_negative"), "webhooks", "secret_key_version >= 0"
    )

    op.execute(IS_WORKER_FUNCTION)
    op.execute(AUTHENTICATE_FUNCTION)
    for table, (tenant, worker) in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_tenant ON {table} USING ({tenant}) WITH CHECK ({tenant})"
        )
        if worker:
            op.execute(
                f"CREATE POLICY {table}_worker ON {table} "
                f"USING ({IS_WORKER}) WITH CHECK ({IS_WORKER})"
            )
    op.execute(
        f"CREATE POLICY api_keys_lookup ON api_keys FOR SELECT USING (key_hash = {API_KEY_DIGEST})"
    )

    op.execute(
        _for_existing_roles(WRITER_ROLES, "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM %I")
    )
    op.execute(
        _for_existing_roles(
            APP_ROLES, "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM %I"
        )
    )


def downgrade() -> None:
    """Drop the policies, RLS, the key version column, ``api_keys`` and the function."""
    op.execute("DROP POLICY IF EXISTS api_keys_lookup ON api_keys")
    for table, (_, worker) in reversed(POLICIES.items()):
        if worker:
            op.execute(f"DROP POLICY IF EXISTS {table}_worker ON {table}")
        op.execute(f"DROP POLICY IF EXISTS {table}_tenant ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS app_authenticate_api_key(text)")
    op.execute("DROP FUNCTION IF EXISTS app_is_worker()")
    op.drop_constraint(
        op.f("ck_webhooks_secret_key_version_non_negative"), "webhooks", type_="check"
    )
    op.drop_column("webhooks", "secret_key_version")
    op.drop_table("api_keys")
