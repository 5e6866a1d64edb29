"""Good (checked offline only): the shape of a partitioning migration for signals.

A new partitioned table is built beside the old one and swapped in by renames: every index
is on a table this revision created, so none needs CONCURRENTLY.  An index added later to
an existing partitioned table is built per partition CONCURRENTLY and attached to a parent
index created ``ON ONLY`` (which builds nothing), as the second half shows.

Revision ID: good_partitioning
"""

from alembic import op

revision = "good_partitioning"
down_revision = "__head__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE signals_by_month (LIKE signals INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (event_date)"
    )
    op.execute(
        "CREATE TABLE signals_2026_01 PARTITION OF signals_by_month "
        "FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')"
    )
    op.execute("CREATE TABLE signals_default PARTITION OF signals_by_month DEFAULT")
    op.create_index("ix_signals_by_month_company_id", "signals_by_month", ["company_id"])
    op.execute("INSERT INTO signals_by_month SELECT * FROM signals")
    op.execute("ALTER TABLE signals RENAME TO signals_unpartitioned")
    op.execute("ALTER TABLE signals_by_month RENAME TO signals")

    # Later, on the (now existing) partitioned parent "alerts_log": parent index ON ONLY,
    # partitions CONCURRENTLY outside the transaction, then ATTACH.
    op.execute("CREATE INDEX ix_alerts_log_client_id ON ONLY alerts_log (client_id)")
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_alerts_log_2026_client_id "
            "ON alerts_log_2026 (client_id)"
        )
    op.execute("ALTER INDEX ix_alerts_log_client_id ATTACH PARTITION ix_alerts_log_2026_client_id")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_alerts_log_client_id")
    op.execute("ALTER TABLE signals RENAME TO signals_by_month")
    op.execute("ALTER TABLE signals_unpartitioned RENAME TO signals")
    op.execute("DROP TABLE signals_by_month")
