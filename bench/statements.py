"""The SQL the raw asyncpg contender sends: the library's own statements, character for character.

The library compiles its hot reads once per query shape (``repositories/_fast_shapes.py``)
with ``LIMIT``/``OFFSET`` as parameters.  The raw contender sends the same text, so that
PostgreSQL plans both alike: a statement with ``LIMIT 50`` written in it is another
prepared statement, whose generic-or-custom plan choice (made after its first five
executions on each connection) can differ, and did: for ``get_by_company`` the literal
form kept custom plans at about 380 µs of server time against 150 µs for the library's
generic plan, which made the library look 1.5x *faster* than raw asyncpg.

``POINT_SQL``, ``PAGE_SQL`` and ``BY_COMPANY_SQL`` are the older literal-``LIMIT`` forms,
kept for ``bench/scale_measure.py``.
"""

from __future__ import annotations

from bench import data

_COMPANY_COLS = (
    "id, ticker, name, exchange, market_cap_usd, cash_position_usd, quarterly_burn_usd, "
    "total_debt_usd, revenue_ttm_usd, employee_count, headquarters_country, founded_year, "
    "therapeutic_areas, cash_runway_months, cash_constrained, deleted_at, version, "
    "created_by, updated_by, change_reason, created_at, updated_at"
)
_SIGNAL_COLS = (
    "id, company_id, signal_type, event_date, severity, title, description, source, "
    "source_url, signal_data, ma_impact_score, created_by, updated_by, change_reason, "
    "created_at, updated_at"
)
_SCORE_COLS = (
    "s.id, s.company_id, s.score_date, s.total_score, s.pipeline_score, s.financial_score, "
    "s.strategic_score, s.signal_score, s.percentile_rank, s.score_change_30d, "
    "s.score_change_90d, s.key_drivers, s.risk_factors, s.model_version, s.created_by, "
    "s.updated_by, s.change_reason, s.created_at, s.updated_at"
)


def _qualified(table: str, columns: str) -> str:
    return ", ".join(f"{table}.{name.strip()}" for name in columns.split(","))


# -- the library's statements (as compiled for asyncpg) ------------------------------------

LIB_POINT_SQL = (
    f"SELECT {_qualified('companies', _COMPANY_COLS)} \nFROM companies \n"
    "WHERE companies.ticker = $1::VARCHAR AND companies.deleted_at IS NULL "
    "ORDER BY companies.id DESC \n LIMIT $2::INTEGER"
)
LIB_PAGE_SQL = (
    f"SELECT {_qualified('companies', _COMPANY_COLS)} \nFROM companies \n"
    "WHERE companies.therapeutic_areas && $1::TEXT[] AND companies.market_cap_usd >= "
    "$2::NUMERIC(20, 2) AND companies.deleted_at IS NULL ORDER BY companies.market_cap_usd "
    "DESC NULLS LAST, companies.id DESC \n LIMIT $3::INTEGER OFFSET $4::INTEGER"
)
LIB_BY_COMPANY_SQL = (
    f"SELECT {_qualified('signals', _SIGNAL_COLS)} \nFROM signals \n"
    "WHERE signals.company_id = $1::BIGINT AND signals.event_date >= $2::TIMESTAMP WITH TIME "
    "ZONE ORDER BY signals.event_date DESC, signals.id DESC \n LIMIT $3::INTEGER OFFSET "
    "$4::INTEGER"
)
# Every signal of one company (the 100,000-row read of the memory row).
ALL_BY_COMPANY_SQL = (
    f"SELECT {_SIGNAL_COLS} FROM signals WHERE company_id = $1 ORDER BY event_date DESC, id DESC"
)
SCORE_INSERT_SQL = (
    "INSERT INTO ma_scores (company_id, score_date, total_score, score_change_30d, "
    "score_change_90d, model_version) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
)

# -- older literal-LIMIT forms (bench/scale_measure.py) ------------------------------------

POINT_SQL = (
    f"SELECT {_COMPANY_COLS} FROM companies WHERE ticker = $1 AND deleted_at IS NULL "
    "ORDER BY id DESC LIMIT 1"
)
PAGE_SQL = (
    f"SELECT {_COMPANY_COLS} FROM companies WHERE therapeutic_areas && $1::text[] "
    "AND market_cap_usd >= $2 AND deleted_at IS NULL "
    "ORDER BY market_cap_usd DESC NULLS LAST, id DESC LIMIT 50"
)
BY_COMPANY_SQL = (
    f"SELECT {_SIGNAL_COLS} FROM signals WHERE company_id = $1 AND event_date >= $2 "
    "ORDER BY event_date DESC, id DESC LIMIT 50"
)

# -- statements of the other rows ------------------------------------------------------------

TOP_SQL = (
    f"SELECT {_SCORE_COLS}, c.* FROM companies c "
    "JOIN LATERAL (SELECT l.id FROM ma_scores l WHERE l.company_id = c.id "
    "ORDER BY l.score_date DESC LIMIT 1) latest ON true "
    "JOIN ma_scores s ON s.id = latest.id WHERE c.deleted_at IS NULL "
    "ORDER BY s.total_score DESC, s.company_id, s.id LIMIT $1"
)
# The library's statement: only scores whose rank changes are written.
PERCENTILE_SQL = (
    "UPDATE ma_scores SET percentile_rank = ranked.rank, updated_at = now() FROM "
    "(SELECT id AS score_id, CAST(percent_rank() OVER (PARTITION BY score_date "
    "ORDER BY total_score) AS NUMERIC(5, 4)) AS rank FROM ma_scores) AS ranked "
    "WHERE ma_scores.id = ranked.score_id "
    "AND ma_scores.percentile_rank IS DISTINCT FROM ranked.rank"
)
_UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in data.COMPANY_COLUMNS if c != "ticker")
UPSERT_SQL = (
    f"INSERT INTO companies ({', '.join(data.COMPANY_COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(data.COMPANY_COLUMNS)))}) "
    "ON CONFLICT (ticker) WHERE deleted_at IS NULL DO UPDATE SET "
    f"{_UPSERT_SET}, version = companies.version + 1, updated_at = now()"
)
