"""Bad: CREATE INDEX CONCURRENTLY inside the migration transaction (no autocommit_block).

Revision ID: bad_index_in_transaction
"""

from alembic import op

revision = "bad_index_in_transaction"
down_revision = "__head__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_companies_name", "companies", ["name"], postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index("ix_companies_name", table_name="companies")
