"""Good: the safe forms of what the bad examples do, on existing tables.

* a NOT NULL column with a server default (no rewrite since PostgreSQL 11);
* a nullable column backfilled in batches outside the transaction (a DO block that
  updates 1000 rows at a time and commits each batch), then SET NOT NULL;
* an index built CONCURRENTLY in an autocommit block (IF NOT EXISTS: a re-run after a
  failed build finds the index env.py rebuilt);
* a type change that rewrites nothing, with the comment saying why.

Revision ID: good_patterns
"""

import sqlalchemy as sa
from alembic import op

revision = "good_patterns"
down_revision = "__head__"
branch_labels = None
depends_on = None

BACKFILL_SECTOR = """
DO $$
DECLARE updated integer;
BEGIN
    LOOP
        UPDATE companies SET sector = 'biotech'
        WHERE id IN (SELECT id FROM companies WHERE sector IS NULL LIMIT 1000);
        GET DIAGNOSTICS updated = ROW_COUNT;
        EXIT WHEN updated = 0;
        COMMIT;
    END LOOP;
END
$$
"""


def upgrade() -> None:
    op.add_column(
        "companies",
        sa.Column("region", sa.Text(), server_default=sa.text("'unknown'"), nullable=False),
    )
    op.add_column("companies", sa.Column("sector", sa.Text(), nullable=True))
    with op.get_context().autocommit_block():
        op.execute(BACKFILL_SECTOR)
        op.create_index(
            "ix_companies_sector",
            "companies",
            ["sector"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
    op.alter_column("companies", "sector", nullable=False)
    # safe-rewrite: companies.exchange text -> varchar (no length) is binary coercible:
    # PostgreSQL only updates the catalog, no row is rewritten and no index rebuilt.
    op.alter_column("companies", "exchange", type_=sa.String(), existing_type=sa.Text())


def downgrade() -> None:
    op.alter_column("companies", "exchange", type_=sa.Text(), existing_type=sa.String())
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_companies_sector",
            table_name="companies",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_column("companies", "sector")
    op.drop_column("companies", "region")
