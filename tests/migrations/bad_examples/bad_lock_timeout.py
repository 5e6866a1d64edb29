"""Bad: switches lock_timeout off, so the ALTER TABLE would queue behind any long transaction.

Revision ID: bad_lock_timeout
"""

import sqlalchemy as sa
from alembic import op

revision = "bad_lock_timeout"
down_revision = "__head__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = 0")  # "this one must not fail": it must not block either
    op.add_column("companies", sa.Column("region", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("companies", "region")
