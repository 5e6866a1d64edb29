"""Signals partitioned by month on event_date.

``signals`` becomes a table range-partitioned on ``event_date`` (``timestamptz``), one
partition per calendar month in UTC, named ``signals_yYYYYmMM``, plus the DEFAULT partition
``signals_default`` for any date no month partition covers, so no insert ever fails for
want of a partition.  The primary key becomes ``(id, event_date)``: PostgreSQL requires
every unique constraint of a partitioned table to include the partition key.  ``id`` keeps
coming from the same identity sequence (its position is carried over), so ids stay unique
and keep growing; no table references ``signals``, so no foreign key is lost.

How (reviewable, all in this revision's transaction, so a failure leaves ``0002`` intact):

1. Refuse, before changing anything, a ``signals`` with something this revision would not
   carry over: a foreign key, trigger, policy or view referring to it, or an index that
   ``0001`` did not create.
2. Rename the old table, its indexes and its identity sequence out of the way
   (``signals_unpartitioned``...), so the new table gets every final name directly.
3. Create the partitioned ``signals`` (same columns in the same order, same CHECKs), one
   partition per month that holds rows, the current month and the three after it (UTC),
   and ``signals_default``.
4. Copy every row with one ``INSERT ... SELECT`` (ids included), check the row counts
   match, carry over the table's privileges and the sequence position.
5. Drop the old table, then add the primary key, the foreign key to ``companies`` and the
   five indexes, each built once over the copied rows (faster than maintaining them row by
   row), and ``ANALYZE`` (autovacuum never analyzes a partitioned parent).

Locks: ``signals`` is locked ACCESS EXCLUSIVE first (waiting at most ``lock_timeout``) and
stays locked until the commit, so readers and writers of ``signals`` wait for the copy (a
million rows took 12 s on a two-core test machine) and nothing written meanwhile is missed.
Adding the foreign key takes SHARE ROW EXCLUSIVE on ``companies`` while it validates (one
join over the copied rows): company writes wait for that part, company reads do not.
Run it in a quiet window on a large table.

Downgrade does the same in reverse: a plain ``signals`` keyed by ``id`` with every row of
the partitioned one (from all attached partitions, DEFAULT included).  Partitions detached
earlier by ``biotech-ma-db partitions detach`` (without ``--drop``) are standalone tables by
then and are left as they are.

Revision ID: 0003
Revises: 0002
Create Date: 2026-02-01 00:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the values at this revision (never import application code here).
SIGNAL_TYPES = (
    "sec_filing",
    "fda_approval",
    "clinical_trial",
    "insider_trading",
    "partnership",
    "financing",
    "executive_change",
    "patent",
    "news",
)
SEVERITIES = ("low", "medium", "high", "critical")
MONTHS_AHEAD = 3
"""Month partitions created past the current one, so new rows do not land in DEFAULT."""

COLUMNS = (
    "id",
    "company_id",
    "signal_type",
    "event_date",
    "severity",
    "title",
    "description",
    "source",
    "source_url",
    "signal_data",
    "ma_impact_score",
    "created_by",
    "updated_by",
    "change_reason",
    "created_at",
    "updated_at",
)
INDEXES: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "ix_signals_company_id_signal_type": (["company_id", "signal_type"], {}),
    "ix_signals_company_id_event_date": (["company_id", sa.text("event_date DESC")], {}),
    "ix_signals_event_date": (["event_date"], {}),
    "ix_signals_severity": (["severity"], {}),
    "ix_signals_signal_data": (["signal_data"], {"postgresql_using": "gin"}),
}
ASIDE = "signals_unpartitioned"  # the old table while the new one is filled (upgrade)
PARTITIONED_ASIDE = "signals_partitioned"  # the same for the downgrade


def _columns() -> list[sa.Column[Any]]:
    """The columns of ``signals`` as ``0001`` created them, in the same order."""

    def text_column(name: str, *, nullable: bool = True) -> sa.Column[Any]:
        return sa.Column(name, sa.Text(), nullable=nullable)

    def now(name: str) -> sa.Column[Any]:
        return sa.Column(
            name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        )

    return [
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("company_id", sa.BigInteger(), nullable=False),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("event_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("severity", sa.String(32), server_default=sa.text("'medium'"), nullable=False),
        text_column("title", nullable=False),
        text_column("description"),
        text_column("source"),
        text_column("source_url"),
        sa.Column(
            "signal_data",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("ma_impact_score", sa.Numeric(5, 2), nullable=True),
        text_column("created_by"),
        text_column("updated_by"),
        text_column("change_reason"),
        now("created_at"),
        now("updated_at"),
    ]


def _checks() -> list[sa.CheckConstraint]:
    def values(items: Sequence[str]) -> str:
        return ", ".join(f"'{item}'" for item in items)

    return [
        sa.CheckConstraint(
            f"signal_type IN ({values(SIGNAL_TYPES)})", name=op.f("ck_signals_signal_type")
        ),
        sa.CheckConstraint(f"severity IN ({values(SEVERITIES)})", name=op.f("ck_signals_severity")),
        sa.CheckConstraint(
            "ma_impact_score BETWEEN -100 AND 100", name=op.f("ck_signals_ma_impact_score_range")
        ),
    ]


# Step 1.  Everything here would be silently lost (or make the DROP fail late) otherwise.
REFUSE_UNKNOWN_DEPENDENTS = f"""
DO $$
DECLARE
    known_indexes text[] := ARRAY['pk_signals', {", ".join(f"'{name}'" for name in INDEXES)}];
    found text;
BEGIN
    SELECT string_agg(conrelid::regclass::text || '.' || conname, ', ') INTO found
    FROM pg_constraint WHERE confrelid = 'signals'::regclass;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'foreign keys reference signals (%): its key becomes (id, event_date)',
            found;
    END IF;
    SELECT string_agg(tgname, ', ') INTO found
    FROM pg_trigger WHERE tgrelid = 'signals'::regclass AND NOT tgisinternal;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'signals has triggers this migration does not recreate: %', found;
    END IF;
    SELECT string_agg(polname, ', ') INTO found FROM pg_policy WHERE polrelid = 'signals'::regclass;
    IF found IS NOT NULL OR (
        SELECT relrowsecurity OR relforcerowsecurity FROM pg_class WHERE oid = 'signals'::regclass
    ) THEN
        RAISE EXCEPTION 'signals has row-level security this migration does not recreate: %',
            coalesce(found, 'RLS enabled');
    END IF;
    SELECT string_agg(DISTINCT rule.ev_class::regclass::text, ', ') INTO found
    FROM pg_depend AS dep JOIN pg_rewrite AS rule ON rule.oid = dep.objid
    WHERE dep.refobjid = 'signals'::regclass AND rule.ev_class <> 'signals'::regclass;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'views depend on signals (%): drop them first and recreate them after',
            found;
    END IF;
    SELECT string_agg(indexrelid::regclass::text, ', ') INTO found
    FROM pg_index
    WHERE indrelid = 'signals'::regclass AND NOT indexrelid::regclass::text = ANY (known_indexes);
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'signals has indexes this migration does not recreate: %', found;
    END IF;
END
$$
"""  # noqa: S608 — constants only

# Step 3.  Bounds are UTC midnights written out in full, so the session's TimeZone can
# neither shift them nor change the names.
CREATE_MONTH_PARTITIONS = f"""
DO $$
DECLARE
    month_start timestamp;
BEGIN
    FOR month_start IN
        SELECT DISTINCT date_trunc('month', event_date AT TIME ZONE 'UTC') FROM {ASIDE}
        UNION
        SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => ahead)
        FROM generate_series(0, {MONTHS_AHEAD}) AS ahead
        ORDER BY 1
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF signals FOR VALUES FROM (%L) TO (%L)',
            'signals_' || to_char(month_start, '"y"YYYY"m"MM'),
            to_char(month_start, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(month_start + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00'
        );
    END LOOP;
END
$$
"""  # noqa: S608 — constants only

CHECK_ROW_COUNTS = """
DO $$
DECLARE
    copied bigint := (SELECT count(*) FROM {target});
    original bigint := (SELECT count(*) FROM {source});
BEGIN
    IF copied <> original THEN
        RAISE EXCEPTION 'copied % of % signals rows; nothing was changed', copied, original;
    END IF;
END
$$
"""

# Privileges granted on the old table (by provision-roles or by hand) go to the new one;
# ``app_owner``'s default privileges would cover most, but not grants made by hand.
COPY_PRIVILEGES = """
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT acl.privilege_type, acl.is_grantable,
               CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(role.rolname) END AS who
        FROM pg_class AS cls
        CROSS JOIN LATERAL aclexplode(cls.relacl) AS acl
        LEFT JOIN pg_roles AS role ON role.oid = acl.grantee
        WHERE cls.oid = '{source}'::regclass AND acl.grantee <> cls.relowner
    LOOP
        EXECUTE format('GRANT %s ON {target} TO %s%s', item.privilege_type, item.who,
                       CASE WHEN item.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$
"""

# The new identity sequence starts where the old one stood (or past the largest id, if
# rows were inserted with explicit ids), so ids never repeat.
CONTINUE_IDS = """
SELECT setval(
    pg_get_serial_sequence('{target}', 'id'),
    GREATEST(old.last_value, coalesce(top.id, 0)),
    old.is_called OR coalesce(top.id, 0) >= old.last_value
)
FROM {source_sequence} AS old, (SELECT max(id) AS id FROM {source}) AS top
"""


# PostgreSQL 18 names NOT NULL constraints after the table (``signals_id_not_null``); the
# old table's keep their names through a rename and would push the new ones to "...1".
RENAME_NOT_NULL = """
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = '{aside}'::regclass AND contype = 'n' AND starts_with(conname, '{table}_')
    LOOP
        EXECUTE format('ALTER TABLE {aside} RENAME CONSTRAINT %I TO %I', item.conname,
                       '{aside}' || substr(item.conname, length('{table}') + 1));
    END LOOP;
END
$$
"""


def _set_aside(table: str, aside: str) -> None:
    """Rename ``table``, its key, indexes, NOT NULLs and identity sequence to ``aside``'s."""
    op.rename_table(table, aside)
    for name in ("pk_signals", *INDEXES):
        op.execute(f"ALTER INDEX {name} RENAME TO {name.replace('signals', aside, 1)}")
    op.execute(RENAME_NOT_NULL.format(table=table, aside=aside))
    op.execute(f"ALTER SEQUENCE {table}_id_seq RENAME TO {aside}_id_seq")


def _fill(source: str) -> None:
    """Copy every row of ``source`` into ``signals``, checked, with privileges and ids."""
    columns = ", ".join(COLUMNS)
    op.execute(f"INSERT INTO signals ({columns}) SELECT {columns} FROM {source}")  # noqa: S608
    op.execute(CHECK_ROW_COUNTS.format(target="signals", source=source))
    op.execute(COPY_PRIVILEGES.format(target="signals", source=source))
    op.execute(
        CONTINUE_IDS.format(target="signals", source=source, source_sequence=f"{source}_id_seq")
    )


def _finish(primary_key: list[str]) -> None:
    """The key, the foreign key and the indexes, built over the copied rows; statistics."""
    op.create_primary_key(op.f("pk_signals"), "signals", primary_key)
    op.create_foreign_key(
        op.f("fk_signals_company_id_companies"),
        "signals",
        "companies",
        ["company_id"],
        ["id"],
        ondelete="CASCADE",
    )
    for name, (columns, options) in INDEXES.items():
        op.create_index(op.f(name), "signals", columns, **options)
    op.execute("ANALYZE signals")


def upgrade() -> None:
    """Replace ``signals`` by a copy partitioned by month, with every row and index."""
    # safe-rewrite: signals the table is copied, not altered: ACCESS EXCLUSIVE is taken up
    # front (bounded by lock_timeout) and held to the commit, so no write can be missed and
    # a failure rolls back to the untouched original; see the docstring for the cost.
    op.execute("LOCK TABLE signals IN ACCESS EXCLUSIVE MODE")
    op.execute(REFUSE_UNKNOWN_DEPENDENTS)
    _set_aside("signals", ASIDE)
    op.create_table(
        "signals", *_columns(), *_checks(), postgresql_partition_by="RANGE (event_date)"
    )
    op.execute(CREATE_MONTH_PARTITIONS)
    op.execute("CREATE TABLE signals_default PARTITION OF signals DEFAULT")
    _fill(ASIDE)
    op.drop_table(ASIDE)
    _finish(["id", "event_date"])


def downgrade() -> None:
    """Back to one plain ``signals`` keyed by ``id``, with every row of every partition."""
    # safe-rewrite: signals the same copy in reverse, under the same ACCESS EXCLUSIVE lock.
    op.execute("LOCK TABLE signals IN ACCESS EXCLUSIVE MODE")
    _set_aside("signals", PARTITIONED_ASIDE)
    op.create_table("signals", *_columns(), *_checks())
    _fill(PARTITIONED_ASIDE)
    op.drop_table(PARTITIONED_ASIDE)  # its attached partitions go with it
    _finish(["id"])
