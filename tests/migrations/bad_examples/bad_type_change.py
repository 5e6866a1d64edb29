"""Bad: a column type change on the existing table reports, with no word on why it is safe.

Revision ID: bad_type_change
"""

import sqlalchemy as sa
from alembic import op

revision = "bad_type_change"
down_revision = "__head__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("reports", "size_bytes", type_=sa.Numeric(30), existing_type=sa.BigInteger())


def downgrade() -> None:
    op.alter_column("reports", "size_bytes", type_=sa.BigInteger(), existing_type=sa.Numeric(30))
