"""Initial schema.

Companies, drug candidates, signals, scores, acquirer matches, reports, alerts, webhooks
and their deliveries, API clients and the audit log.  Hand-written, and kept identical to
the models (``alembic check`` finds nothing).  Enums are checked text: ``VARCHAR(32)``
plus ``CHECK (col IN (...))``.  Every name is final (``op.f``) and follows the models'
naming convention.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the enum values at this revision (never import application code here).
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
PHASES = ("preclinical", "phase_1", "phase_2", "phase_3", "nda_bla_submitted", "approved")
REPORT_STATUSES = ("pending", "generating", "ready", "distributed", "failed")
STORAGE_BACKENDS = ("local", "s3")
DELIVERY_STATUSES = ("pending", "delivered", "failed", "dead")
AUDIT_ACTIONS = ("insert", "update", "delete", "soft_delete", "restore")

RUNWAY_SQL = "cash_position_usd / NULLIF(quarterly_burn_usd, 0) * 3"

TABLES = (  # in creation order; dropped in reverse
    "companies",
    "clients",
    "drug_candidates",
    "signals",
    "ma_scores",
    "acquirer_matches",
    "reports",
    "alerts",
    "webhooks",
    "webhook_deliveries",
    "audit_log",
)


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def enum_column(name: str, *, nullable: bool = False, default: str | None = None) -> sa.Column[Any]:
    return sa.Column(
        name,
        sa.String(32),
        nullable=nullable,
        server_default=sa.text(f"'{default}'") if default is not None else None,
    )


def enum_check(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"{column} IN ({_sql_list(values)})", name=op.f(f"ck_{table}_{column}")
    )


def check(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def non_negative(table: str, *columns: str) -> list[sa.CheckConstraint]:
    return [check(table, f"{column}_non_negative", f"{column} >= 0") for column in columns]


def id_column() -> sa.Column[Any]:
    return sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False)


def pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def fk(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{parent}.id"], name=op.f(f"fk_{table}_{column}_{parent}"), ondelete="CASCADE"
    )


def money(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Numeric(20, 2), nullable=True)


def text_array(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
    )


def bigint_array(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'"), nullable=False
    )


def jsonb(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
    )


def integer(name: str, default: int) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer(), server_default=sa.text(str(default)), nullable=False)


def flag(name: str, default: bool) -> sa.Column[Any]:
    return sa.Column(
        name, sa.Boolean(), server_default=sa.text(str(default).lower()), nullable=False
    )


def nullable(name: str, type_: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=True)


def required(name: str, type_: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=False)


def timestamptz(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def soft_delete_columns() -> list[sa.Column[Any]]:
    return [timestamptz("deleted_at")]


def version_columns() -> list[sa.Column[Any]]:
    return [integer("version", 1)]


def audit_columns() -> list[sa.Column[Any]]:
    return [
        nullable("created_by", sa.Text()),
        nullable("updated_by", sa.Text()),
        nullable("change_reason", sa.Text()),
    ]


def timestamp_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def index(table: str, *columns: str, name: str | None = None, **kw: Any) -> None:
    op.create_index(op.f(name or f"ix_{table}_{'_'.join(columns)}"), table, list(columns), **kw)


def upgrade() -> None:
    """Create every table, constraint and index."""
    op.create_table(
        "companies",
        id_column(),
        required("ticker", sa.Text()),
        required("name", sa.Text()),
        nullable("exchange", sa.Text()),
        money("market_cap_usd"),
        money("cash_position_usd"),
        money("quarterly_burn_usd"),
        money("total_debt_usd"),
        money("revenue_ttm_usd"),
        nullable("employee_count", sa.Integer()),
        nullable("headquarters_country", sa.Text()),
        nullable("founded_year", sa.Integer()),
        text_array("therapeutic_areas"),
        sa.Column(
            "cash_runway_months",
            sa.Numeric(),
            sa.Computed(f"round({RUNWAY_SQL}, 2)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "cash_constrained",
            sa.Boolean(),
            sa.Computed(f"COALESCE({RUNWAY_SQL} < 12, false)", persisted=True),
            nullable=False,
        ),
        *soft_delete_columns(),
        *version_columns(),
        *audit_columns(),
        *timestamp_columns(),
        pk("companies"),
        check("companies", "ticker_format", "ticker ~ '^[A-Z][A-Z0-9.-]{0,9}$'"),
        *non_negative(
            "companies",
            "employee_count",
            "market_cap_usd",
            "cash_position_usd",
            "quarterly_burn_usd",
            "total_debt_usd",
            "revenue_ttm_usd",
        ),
    )
    index("companies", "ticker", unique=True, postgresql_where=sa.text("deleted_at IS NULL"))
    index("companies", "market_cap_usd")
    index("companies", "cash_constrained")
    index("companies", "therapeutic_areas", postgresql_using="gin")

    op.create_table(
        "clients",
        id_column(),
        required("name", sa.Text()),
        required("api_key_prefix", sa.Text()),
        required("api_key_hash", sa.Text()),
        text_array("scopes"),
        integer("rate_limit_per_minute", 60),
        bigint_array("watchlist"),
        jsonb("preferences"),
        flag("is_active", True),
        timestamptz("last_seen_at"),
        *soft_delete_columns(),
        *version_columns(),
        *audit_columns(),
        *timestamp_columns(),
        pk("clients"),
        sa.UniqueConstraint("api_key_prefix", name=op.f("uq_clients_api_key_prefix")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_clients_api_key_hash")),
        check("clients", "rate_limit_per_minute_positive", "rate_limit_per_minute > 0"),
    )

    op.create_table(
        "drug_candidates",
        id_column(),
        required("company_id", sa.BigInteger()),
        required("drug_name", sa.Text()),
        enum_column("phase"),
        nullable("indication", sa.Text()),
        nullable("mechanism_of_action", sa.Text()),
        nullable("therapeutic_area", sa.Text()),
        nullable("patent_expiry_date", sa.Date()),
        text_array("regulatory_designations"),
        nullable("regulatory_status", sa.Text()),
        money("peak_sales_estimate_usd"),
        *audit_columns(),
        *timestamp_columns(),
        pk("drug_candidates"),
        fk("drug_candidates", "company_id", "companies"),
        sa.UniqueConstraint(
            "company_id", "drug_name", name=op.f("uq_drug_candidates_company_id_drug_name")
        ),
        enum_check("drug_candidates", "phase", PHASES),
        *non_negative("drug_candidates", "peak_sales_estimate_usd"),
    )
    index("drug_candidates", "company_id", "phase")
    index("drug_candidates", "therapeutic_area")

    op.create_table(
        "signals",
        id_column(),
        required("company_id", sa.BigInteger()),
        enum_column("signal_type"),
        required("event_date", sa.DateTime(timezone=True)),
        enum_column("severity", default="medium"),
        required("title", sa.Text()),
        nullable("description", sa.Text()),
        nullable("source", sa.Text()),
        nullable("source_url", sa.Text()),
        jsonb("signal_data"),
        nullable("ma_impact_score", sa.Numeric(5, 2)),
        *audit_columns(),
        *timestamp_columns(),
        pk("signals"),
        fk("signals", "company_id", "companies"),
        enum_check("signals", "signal_type", SIGNAL_TYPES),
        enum_check("signals", "severity", SEVERITIES),
        check("signals", "ma_impact_score_range", "ma_impact_score BETWEEN -100 AND 100"),
    )
    index("signals", "company_id", "signal_type")
    op.create_index(
        op.f("ix_signals_company_id_event_date"),
        "signals",
        ["company_id", sa.text("event_date DESC")],
    )
    index("signals", "event_date")
    index("signals", "severity")
    index("signals", "signal_data", postgresql_using="gin")

    op.create_table(
        "ma_scores",
        id_column(),
        required("company_id", sa.BigInteger()),
        sa.Column("score_date", sa.Date(), server_default=sa.text("CURRENT_DATE"), nullable=False),
        required("total_score", sa.Numeric(5, 2)),
        nullable("pipeline_score", sa.Numeric(5, 2)),
        nullable("financial_score", sa.Numeric(5, 2)),
        nullable("strategic_score", sa.Numeric(5, 2)),
        nullable("signal_score", sa.Numeric(5, 2)),
        nullable("percentile_rank", sa.Numeric(5, 4)),
        nullable("score_change_30d", sa.Numeric(6, 2)),
        nullable("score_change_90d", sa.Numeric(6, 2)),
        text_array("key_drivers"),
        text_array("risk_factors"),
        nullable("model_version", sa.Text()),
        *audit_columns(),
        *timestamp_columns(),
        pk("ma_scores"),
        fk("ma_scores", "company_id", "companies"),
        sa.UniqueConstraint(
            "company_id", "score_date", name=op.f("uq_ma_scores_company_id_score_date")
        ),
        *(
            check("ma_scores", f"{column}_range", f"{column} BETWEEN 0 AND 100")
            for column in (
                "total_score",
                "pipeline_score",
                "financial_score",
                "strategic_score",
                "signal_score",
            )
        ),
        check("ma_scores", "percentile_rank_range", "percentile_rank BETWEEN 0 AND 1"),
    )
    index("ma_scores", "total_score")
    index("ma_scores", "score_date")

    op.create_table(
        "acquirer_matches",
        id_column(),
        required("target_company_id", sa.BigInteger()),
        required("acquirer_company_id", sa.BigInteger()),
        sa.Column("match_date", sa.Date(), server_default=sa.text("CURRENT_DATE"), nullable=False),
        required("strategic_fit_score", sa.Numeric(5, 2)),
        nullable("synergy_rationale", sa.Text()),
        text_array("therapeutic_overlap"),
        money("estimated_value_low_usd"),
        money("estimated_value_high_usd"),
        nullable("estimated_premium_pct", sa.Numeric(7, 2)),
        nullable("match_rank", sa.Integer()),
        flag("is_top_match", False),
        *audit_columns(),
        *timestamp_columns(),
        pk("acquirer_matches"),
        fk("acquirer_matches", "target_company_id", "companies"),
        fk("acquirer_matches", "acquirer_company_id", "companies"),
        check(
            "acquirer_matches", "target_not_acquirer", "target_company_id <> acquirer_company_id"
        ),
        check(
            "acquirer_matches",
            "value_range_ordered",
            "estimated_value_low_usd <= estimated_value_high_usd",
        ),
        *non_negative("acquirer_matches", "estimated_value_low_usd"),
        check(
            "acquirer_matches", "strategic_fit_score_range", "strategic_fit_score BETWEEN 0 AND 100"
        ),
        check("acquirer_matches", "match_rank_positive", "match_rank >= 1"),
    )
    index("acquirer_matches", "target_company_id")
    index("acquirer_matches", "acquirer_company_id")
    index("acquirer_matches", "strategic_fit_score")
    index(
        "acquirer_matches",
        "target_company_id",
        "match_rank",
        name="ix_acquirer_matches_top_matches",
        postgresql_where=sa.text("is_top_match"),
    )

    op.create_table(
        "reports",
        id_column(),
        required("report_type", sa.Text()),
        required("report_date", sa.Date()),
        nullable("period_start", sa.Date()),
        nullable("period_end", sa.Date()),
        required("title", sa.Text()),
        enum_column("storage_backend", default="local"),
        nullable("storage_uri", sa.Text()),
        nullable("content_type", sa.Text()),
        nullable("size_bytes", sa.BigInteger()),
        nullable("sha256", sa.Text()),
        enum_column("status", default="pending"),
        text_array("recipients"),
        timestamptz("distributed_at"),
        *soft_delete_columns(),
        *timestamp_columns(),
        pk("reports"),
        check("reports", "period_ordered", "period_start <= period_end"),
        *non_negative("reports", "size_bytes"),
        check("reports", "sha256_format", "sha256 ~ '^[0-9a-f]{64}$'"),
        enum_check("reports", "storage_backend", STORAGE_BACKENDS),
        enum_check("reports", "status", REPORT_STATUSES),
    )
    index("reports", "report_type", "report_date")

    op.create_table(
        "alerts",
        id_column(),
        required("client_id", sa.BigInteger()),
        required("name", sa.Text()),
        required("alert_type", sa.Text()),
        jsonb("conditions"),
        bigint_array("company_ids"),
        text_array("signal_types"),
        enum_column("min_severity", nullable=True),
        text_array("channels"),
        flag("is_active", True),
        integer("cooldown_minutes", 60),
        timestamptz("last_triggered_at"),
        integer("trigger_count", 0),
        *soft_delete_columns(),
        *version_columns(),
        *audit_columns(),
        *timestamp_columns(),
        pk("alerts"),
        fk("alerts", "client_id", "clients"),
        check(
            "alerts",
            "signal_types_known",
            f"signal_types <@ ARRAY[{_sql_list(SIGNAL_TYPES)}]::text[]",
        ),
        enum_check("alerts", "min_severity", SEVERITIES),
        *non_negative("alerts", "cooldown_minutes", "trigger_count"),
    )
    index("alerts", "client_id", "is_active")

    op.create_table(
        "webhooks",
        id_column(),
        required("client_id", sa.BigInteger()),
        required("url", sa.Text()),
        text_array("event_types"),
        required("secret", sa.Text()),
        flag("is_active", True),
        integer("max_retries", 5),
        integer("backoff_seconds", 60),
        timestamptz("last_delivery_at"),
        nullable("last_status_code", sa.Integer()),
        integer("consecutive_failures", 0),
        *soft_delete_columns(),
        *version_columns(),
        *audit_columns(),
        *timestamp_columns(),
        pk("webhooks"),
        fk("webhooks", "client_id", "clients"),
        check("webhooks", "url_scheme", "url ~* '^https?://'"),
        *non_negative("webhooks", "max_retries", "backoff_seconds", "consecutive_failures"),
        check("webhooks", "last_status_code_range", "last_status_code BETWEEN 100 AND 599"),
    )
    index("webhooks", "client_id", "is_active")

    op.create_table(
        "webhook_deliveries",
        id_column(),
        required("webhook_id", sa.BigInteger()),
        sa.Column(
            "event_id", sa.Text(), server_default=sa.text("gen_random_uuid()::text"), nullable=False
        ),
        required("event_type", sa.Text()),
        jsonb("payload"),
        enum_column("status", default="pending"),
        integer("attempts", 0),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
        nullable("last_error", sa.Text()),
        timestamptz("delivered_at"),
        *timestamp_columns(),
        pk("webhook_deliveries"),
        fk("webhook_deliveries", "webhook_id", "webhooks"),
        sa.UniqueConstraint(
            "webhook_id", "event_id", name=op.f("uq_webhook_deliveries_webhook_id_event_id")
        ),
        enum_check("webhook_deliveries", "status", DELIVERY_STATUSES),
        *non_negative("webhook_deliveries", "attempts"),
    )
    index("webhook_deliveries", "status", "next_attempt_at")

    op.create_table(
        "audit_log",
        id_column(),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        nullable("actor", sa.Text()),
        nullable("reason", sa.Text()),
        required("table_name", sa.Text()),
        required("row_id", sa.BigInteger()),
        enum_column("action"),
        jsonb("changes"),
        sa.Column(
            "transaction_id",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id())::text::bigint"),
            nullable=True,
        ),
        pk("audit_log"),
        enum_check("audit_log", "action", AUDIT_ACTIONS),
    )
    index("audit_log", "table_name", "row_id")
    index("audit_log", "occurred_at")


def downgrade() -> None:
    """Drop everything this revision created (indexes and constraints go with the tables)."""
    for table in reversed(TABLES):
        op.drop_table(table)
