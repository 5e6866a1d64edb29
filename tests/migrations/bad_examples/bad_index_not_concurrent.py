"""Bad: a plain CREATE INDEX on the existing table companies (blocks writes while it builds).

Revision ID: bad_index_not_concurrent
"""

from alembic import op

revision = "bad_index_not_concurrent"
down_revision = "__head__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_companies_name", "companies", ["name"])


def downgrade() -> None:
    op.drop_index("ix_companies_name", table_name="companies")
