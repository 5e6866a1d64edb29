"""pytest-alembic's built-in tests, on this project's migrations and an async engine.

The same tests a project adopting this library runs in its CI (see the README's
"Migrations" section).  They run on whatever ``migrations/versions`` holds, so every
revision added later is covered without touching this file.
"""

from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from pytest_alembic.tests.experimental import (
    test_all_models_register_on_metadata,
    test_downgrade_leaves_no_trace,
)

__all__ = [
    "test_all_models_register_on_metadata",
    "test_downgrade_leaves_no_trace",
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]
