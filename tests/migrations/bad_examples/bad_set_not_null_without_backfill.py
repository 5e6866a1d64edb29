"""Bad: SET NOT NULL on an existing column with no batched backfill first.

Revision ID: bad_set_not_null_without_backfill
"""

from alembic import op

revision = "bad_set_not_null_without_backfill"
down_revision = "__head__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE companies SET exchange = 'OTC' WHERE exchange IS NULL")  # one big UPDATE
    op.alter_column("companies", "exchange", nullable=False)


def downgrade() -> None:
    op.alter_column("companies", "exchange", nullable=True)
