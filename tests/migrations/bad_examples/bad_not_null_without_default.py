"""Bad: a NOT NULL column without a default on the existing table companies.

Revision ID: bad_not_null_without_default
"""

import sqlalchemy as sa
from alembic import op

revision = "bad_not_null_without_default"
down_revision = "__head__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("companies", sa.Column("region", sa.Text(), nullable=False))


def downgrade() -> None:
    op.drop_column("companies", "region")
