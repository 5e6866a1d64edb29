"""The schema as migrated: constraints, soft deletes, signal subclasses, generated columns."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from sqlalchemy import CheckConstraint, Table, insert, inspect, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from biotech_ma_db import models
from biotech_ma_db.errors import (
    CheckViolationError,
    ConcurrencyError,
    ConflictError,
    ForeignKeyViolationError,
    NotNullViolationError,
    translate_error,
)
from biotech_ma_db.models import (
    AcquirerMatch,
    Alert,
    ApiKey,
    AuditLogEntry,
    Base,
    Client,
    ClinicalTrialSignal,
    Company,
    DeliveryStatus,
    DrugCandidate,
    ExecutiveChangeSignal,
    FdaApprovalSignal,
    FinancingSignal,
    InsiderTradingSignal,
    MAScore,
    NewsSignal,
    PartnershipSignal,
    PatentSignal,
    Report,
    SecFilingSignal,
    Severity,
    Signal,
    SignalType,
    Webhook,
    WebhookDelivery,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
TODAY = dt.date(2025, 6, 1)
DIGEST = "0" * 64


@dataclass
class Parents:
    """Committed rows that the rows under test refer to."""

    target: Company
    acquirer: Company
    client: Client
    webhook: Webhook


@pytest.fixture(name="parents")
async def fixture_parents(db_session: AsyncSession) -> Parents:
    target = Company(ticker="TGT", name="Target Therapeutics")
    acquirer = Company(ticker="ACQ", name="Acquirer Pharma")
    client = Client(name="Fund", api_key_prefix="bmap_t1", api_key_hash=DIGEST)
    webhook = Webhook(client=client, url="https://hooks.example/x", secret="s")
    db_session.add_all([target, acquirer, client, webhook])
    await db_session.commit()
    return Parents(target, acquirer, client, webhook)


async def _rejected(session: AsyncSession, row: object) -> BaseException:
    """Insert ``row`` in a savepoint and return the typed error it raises."""
    with pytest.raises(sa_exc.IntegrityError) as caught:
        async with session.begin_nested():
            session.add(row)
    return translate_error(caught.value)


async def _rejected_insert(
    session: AsyncSession, table: Table, values: dict[str, object]
) -> BaseException:
    """Like :func:`_rejected`, for a Core INSERT that the ORM would refuse to flush."""
    with pytest.raises(sa_exc.IntegrityError) as caught:
        async with session.begin_nested():
            await session.execute(insert(table).values(**values))
    return translate_error(caught.value)


def _signal(p: Parents, **values: Any) -> Signal:
    fields: dict[str, Any] = {
        "company_id": p.target.id,
        "signal_type": "news",
        "event_date": NOW,
        "title": "t",
    }
    return Signal(**(fields | values))


def _score(p: Parents, **values: Any) -> MAScore:
    return MAScore(**({"company_id": p.target.id, "total_score": 50} | values))


def _match(p: Parents, **values: Any) -> AcquirerMatch:
    fields = {
        "target_company_id": p.target.id,
        "acquirer_company_id": p.acquirer.id,
        "strategic_fit_score": 70,
    }
    return AcquirerMatch(**(fields | values))


def _report(**values: Any) -> Report:
    fields = {"report_type": "weekly", "report_date": TODAY, "title": "Weekly"}
    return Report(**(fields | values))


def _alert(p: Parents, **values: Any) -> Alert:
    return Alert(**({"client_id": p.client.id, "name": "a", "alert_type": "signal"} | values))


def _webhook(p: Parents, **values: Any) -> Webhook:
    fields = {"client_id": p.client.id, "url": "https://x.example", "secret": "s"}
    return Webhook(**(fields | values))


def _delivery(p: Parents, **values: Any) -> WebhookDelivery:
    return WebhookDelivery(**({"webhook_id": p.webhook.id, "event_type": "score"} | values))


Row = Callable[[Parents], object]

# constraint name -> a row that violates it (and only it)
CHECK_CASES: dict[str, Row] = {
    "ck_companies_ticker_format": lambda p: Company(ticker="abc", name="n"),
    "ck_companies_employee_count_non_negative": lambda p: Company(
        ticker="EMP", name="n", employee_count=-1
    ),
    "ck_companies_market_cap_usd_non_negative": lambda p: Company(
        ticker="MC", name="n", market_cap_usd=-1
    ),
    "ck_companies_cash_position_usd_non_negative": lambda p: Company(
        ticker="CP", name="n", cash_position_usd=-1
    ),
    "ck_companies_quarterly_burn_usd_non_negative": lambda p: Company(
        ticker="QB", name="n", quarterly_burn_usd=-1
    ),
    "ck_companies_total_debt_usd_non_negative": lambda p: Company(
        ticker="TD", name="n", total_debt_usd=-1
    ),
    "ck_companies_revenue_ttm_usd_non_negative": lambda p: Company(
        ticker="RV", name="n", revenue_ttm_usd=-1
    ),
    "ck_drug_candidates_phase": lambda p: DrugCandidate(
        company_id=p.target.id, drug_name="d", phase="phase_9"
    ),
    "ck_drug_candidates_peak_sales_estimate_usd_non_negative": lambda p: DrugCandidate(
        company_id=p.target.id, drug_name="d", phase="phase_1", peak_sales_estimate_usd=-5
    ),
    "ck_signals_severity": lambda p: _signal(p, severity="extreme"),
    "ck_signals_ma_impact_score_range": lambda p: _signal(p, ma_impact_score=Decimal("100.5")),
    "ck_ma_scores_total_score_range": lambda p: _score(p, total_score=Decimal("100.01")),
    "ck_ma_scores_pipeline_score_range": lambda p: _score(p, pipeline_score=-1),
    "ck_ma_scores_financial_score_range": lambda p: _score(p, financial_score=101),
    "ck_ma_scores_strategic_score_range": lambda p: _score(p, strategic_score=101),
    "ck_ma_scores_signal_score_range": lambda p: _score(p, signal_score=101),
    "ck_ma_scores_percentile_rank_range": lambda p: _score(p, percentile_rank=Decimal("1.5")),
    "ck_acquirer_matches_target_not_acquirer": lambda p: _match(p, acquirer_company_id=p.target.id),
    "ck_acquirer_matches_value_range_ordered": lambda p: _match(
        p, estimated_value_low_usd=10, estimated_value_high_usd=5
    ),
    "ck_acquirer_matches_estimated_value_low_usd_non_negative": lambda p: _match(
        p, estimated_value_low_usd=-1
    ),
    "ck_acquirer_matches_strategic_fit_score_range": lambda p: _match(
        p, strategic_fit_score=Decimal("100.5")
    ),
    "ck_acquirer_matches_match_rank_positive": lambda p: _match(p, match_rank=0),
    "ck_reports_storage_backend": lambda p: _report(storage_backend="ftp"),
    "ck_reports_status": lambda p: _report(status="lost"),
    "ck_reports_period_ordered": lambda p: _report(
        period_start=TODAY, period_end=TODAY - dt.timedelta(days=1)
    ),
    "ck_reports_size_bytes_non_negative": lambda p: _report(size_bytes=-1),
    "ck_reports_sha256_format": lambda p: _report(sha256="not-a-digest"),
    "ck_alerts_min_severity": lambda p: _alert(p, min_severity="extreme"),
    "ck_alerts_signal_types_known": lambda p: _alert(p, signal_types=["news", "rumor"]),
    "ck_alerts_cooldown_minutes_non_negative": lambda p: _alert(p, cooldown_minutes=-1),
    "ck_alerts_trigger_count_non_negative": lambda p: _alert(p, trigger_count=-1),
    "ck_webhooks_url_scheme": lambda p: _webhook(p, url="ftp://x.example"),
    "ck_webhooks_max_retries_non_negative": lambda p: _webhook(p, max_retries=-1),
    "ck_webhooks_backoff_seconds_non_negative": lambda p: _webhook(p, backoff_seconds=-1),
    "ck_webhooks_consecutive_failures_non_negative": lambda p: _webhook(p, consecutive_failures=-1),
    "ck_webhooks_last_status_code_range": lambda p: _webhook(p, last_status_code=42),
    "ck_webhooks_secret_key_version_non_negative": lambda p: _webhook(p, secret_key_version=-1),
    "ck_api_keys_key_hash_format": lambda p: ApiKey(
        client_id=p.client.id, key_prefix="bmap_live_xxxxxxxx", key_hash="not-hex"
    ),
    "ck_api_keys_last4_format": lambda p: ApiKey(
        client_id=p.client.id, key_prefix="bmap_live_yyyyyyyy", key_hash=DIGEST, last4="a b"
    ),
    "ck_webhook_deliveries_status": lambda p: _delivery(p, status="lost"),
    "ck_webhook_deliveries_attempts_non_negative": lambda p: _delivery(p, attempts=-1),
    "ck_clients_rate_limit_per_minute_positive": lambda p: Client(
        name="c", api_key_prefix="bmap_x", api_key_hash="1" * 64, rate_limit_per_minute=0
    ),
    "ck_audit_log_action": lambda p: AuditLogEntry(
        table_name="companies", row_id=1, action="explode"
    ),
}

# Rows the ORM would refuse to flush (an unknown polymorphic identity warns), sent as Core.
CORE_CHECK_CASES: dict[str, Callable[[Parents], tuple[Table, dict[str, object]]]] = {
    "ck_signals_signal_type": lambda p: (
        Base.metadata.tables["signals"],
        {"company_id": p.target.id, "signal_type": "rumor", "event_date": NOW, "title": "t"},
    ),
}


def _metadata_check_names() -> set[str]:
    return {
        str(constraint.name)
        for table in Base.metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }


class TestCheckConstraints:
    """Every CHECK constraint refuses a bad row with a typed error naming it."""

    def test_every_check_constraint_has_a_case(self) -> None:
        assert set(CHECK_CASES) | set(CORE_CHECK_CASES) == _metadata_check_names()

    @pytest.mark.parametrize("constraint", sorted(CHECK_CASES))
    async def test_rejects_bad_row(
        self, db_session: AsyncSession, parents: Parents, constraint: str
    ) -> None:
        error = await _rejected(db_session, CHECK_CASES[constraint](parents))
        assert isinstance(error, CheckViolationError)
        assert error.constraint == constraint

    @pytest.mark.parametrize("constraint", sorted(CORE_CHECK_CASES))
    async def test_rejects_bad_core_insert(
        self, db_session: AsyncSession, parents: Parents, constraint: str
    ) -> None:
        table, values = CORE_CHECK_CASES[constraint](parents)
        error = await _rejected_insert(db_session, table, values)
        assert isinstance(error, CheckViolationError)
        assert error.constraint == constraint

    @pytest.mark.parametrize("ticker", ["ABCD", "BRK.B", "RDS-A", "X", "A123456789"])
    async def test_accepts_valid_tickers(self, db_session: AsyncSession, ticker: str) -> None:
        db_session.add(Company(ticker=ticker, name="n"))
        await db_session.flush()


class TestKeysAndReferences:
    """Unique keys, foreign keys and NOT NULL surface as their typed errors."""

    async def test_ticker_unique_among_active_companies(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        error = await _rejected(db_session, Company(ticker="TGT", name="Copy"))
        assert isinstance(error, ConflictError)
        assert error.constraint == "ix_companies_ticker"

    async def test_ticker_reusable_after_soft_delete(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        parents.target.deleted_at = NOW
        await db_session.flush()
        db_session.add(Company(ticker="TGT", name="Successor"))
        await db_session.flush()

    @pytest.mark.parametrize(
        ("constraint", "make"),
        [
            (
                "uq_ma_scores_company_id_score_date",
                lambda p: [_score(p, score_date=TODAY), _score(p, score_date=TODAY)],
            ),
            (
                "uq_drug_candidates_company_id_drug_name",
                lambda p: [
                    DrugCandidate(company_id=p.target.id, drug_name="X", phase="phase_1"),
                    DrugCandidate(company_id=p.target.id, drug_name="X", phase="phase_2"),
                ],
            ),
            (
                "uq_webhook_deliveries_webhook_id_event_id",
                lambda p: [_delivery(p, event_id="evt_1"), _delivery(p, event_id="evt_1")],
            ),
            (
                "uq_clients_api_key_prefix",
                lambda p: [Client(name="c", api_key_prefix="bmap_t1", api_key_hash="2" * 64)],
            ),
            (
                "uq_clients_api_key_hash",
                lambda p: [Client(name="c", api_key_prefix="bmap_t2", api_key_hash=DIGEST)],
            ),
        ],
    )
    async def test_unique_keys(
        self,
        db_session: AsyncSession,
        parents: Parents,
        constraint: str,
        make: Callable[[Parents], list[object]],
    ) -> None:
        *first, last = make(parents)
        db_session.add_all(first)
        await db_session.flush()
        error = await _rejected(db_session, last)
        assert isinstance(error, ConflictError)
        assert error.constraint == constraint

    async def test_foreign_key(self, db_session: AsyncSession) -> None:
        error = await _rejected(
            db_session,
            Signal(company_id=-1, signal_type="news", event_date=NOW, title="t"),
        )
        assert isinstance(error, ForeignKeyViolationError)
        assert error.constraint == "fk_signals_company_id_companies"

    async def test_not_null(self, db_session: AsyncSession) -> None:
        error = await _rejected(db_session, Company(ticker="NONAME"))
        assert isinstance(error, NotNullViolationError)
        assert error.columns == ("name",)

    async def test_deleting_a_company_cascades(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        db_session.add_all([_signal(parents), _score(parents), _match(parents)])
        await db_session.flush()
        await db_session.execute(
            text("DELETE FROM companies WHERE id = :id"), {"id": parents.target.id}
        )
        for table in ("signals", "ma_scores", "acquirer_matches"):
            left = await db_session.execute(text(f"SELECT count(*) FROM {table}"))
            assert left.scalar_one() == 0, table


@pytest.fixture(name="with_deleted")
async def fixture_with_deleted(db_session: AsyncSession, parents: Parents) -> tuple[int, int]:
    """Two alerts of the test client, the second soft-deleted; returns their ids."""
    live = _alert(parents, name="live")
    gone = _alert(parents, name="gone", deleted_at=NOW)
    db_session.add_all([live, gone])
    await db_session.flush()
    db_session.expunge_all()
    return live.id, gone.id


class TestSoftDeleteFilter:
    """Soft-deleted rows are invisible to ORM queries unless ``include_deleted`` is set."""

    async def test_direct_select_hides_them(
        self, db_session: AsyncSession, with_deleted: tuple[int, int]
    ) -> None:
        found = await db_session.scalars(select(Alert).where(Alert.id.in_(with_deleted)))
        assert [alert.id for alert in found] == [with_deleted[0]]

    async def test_include_deleted_shows_them(
        self, db_session: AsyncSession, with_deleted: tuple[int, int]
    ) -> None:
        statement = (
            select(Alert).where(Alert.id.in_(with_deleted)).execution_options(include_deleted=True)
        )
        assert {alert.id for alert in await db_session.scalars(statement)} == set(with_deleted)

    async def test_get_hides_them(
        self, db_session: AsyncSession, with_deleted: tuple[int, int]
    ) -> None:
        gone = with_deleted[1]
        assert await db_session.get(Alert, gone) is None
        found = await db_session.get(Alert, gone, execution_options={"include_deleted": True})
        assert found is not None
        assert found.is_deleted

    async def test_selectinload_hides_them(
        self, db_session: AsyncSession, parents: Parents, with_deleted: tuple[int, int]
    ) -> None:
        statement = (
            select(Client)
            .where(Client.id == parents.client.id)
            .options(selectinload(Client.alerts))
        )
        client = (await db_session.scalars(statement)).one()
        assert [alert.id for alert in client.alerts] == [with_deleted[0]]

    async def test_selectinload_with_include_deleted(
        self, db_session: AsyncSession, parents: Parents, with_deleted: tuple[int, int]
    ) -> None:
        statement = (
            select(Client)
            .where(Client.id == parents.client.id)
            .options(selectinload(Client.alerts))
            .execution_options(include_deleted=True)
        )
        client = (await db_session.scalars(statement)).one()
        assert {alert.id for alert in client.alerts} == set(with_deleted)

    async def test_many_to_one_to_a_deleted_parent(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        db_session.add(_signal(parents))
        parents.target.deleted_at = NOW
        await db_session.flush()
        db_session.expunge_all()
        signal = (
            await db_session.scalars(select(Signal).options(selectinload(Signal.company)))
        ).one()
        assert signal.company is None

    async def test_refresh_of_a_deleted_object_still_works(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        parents.target.deleted_at = NOW
        await db_session.flush()
        await db_session.refresh(parents.target)
        assert parents.target.deleted_at == NOW

    async def test_relationships_never_load_implicitly(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        with pytest.raises(sa_exc.InvalidRequestError, match="lazy='raise'"):
            _ = parents.target.signals


class SignalCase(NamedTuple):
    """A signal type, its subclass, some ``signal_data`` and what the accessors answer."""

    signal_type: SignalType
    subclass: type[Signal]
    data: dict[str, object]
    expected: dict[str, object]


SIGNAL_CASES = [
    SignalCase(
        SignalType.SEC_FILING,
        SecFilingSignal,
        {"filing_type": "8-K", "url": "https://sec.example/1", "accession_number": "0001"},
        {"filing_type": "8-K", "filing_url": "https://sec.example/1", "accession_number": "0001"},
    ),
    SignalCase(
        SignalType.FDA_APPROVAL,
        FdaApprovalSignal,
        {"decision": "approved", "drug_name": "Xylo", "application_number": "NDA 1"},
        {"decision": "approved", "drug_name": "Xylo", "application_number": "NDA 1"},
    ),
    SignalCase(
        SignalType.CLINICAL_TRIAL,
        ClinicalTrialSignal,
        {"nct_id": "NCT01234567", "trial_phase": "phase_3", "primary_endpoint_met": True},
        {"nct_id": "NCT01234567", "trial_phase": "phase_3", "primary_endpoint_met": True},
    ),
    SignalCase(
        SignalType.INSIDER_TRADING,
        InsiderTradingSignal,
        {"shares": 10_000, "transaction_type": "buy", "price_usd": 12.5},
        {"shares": 10_000, "transaction_type": "buy", "price_usd": Decimal("12.5")},
    ),
    SignalCase(
        SignalType.PARTNERSHIP,
        PartnershipSignal,
        {"partner_name": "BigPharma", "deal_value_usd": 1_500_000_000},
        {"partner_name": "BigPharma", "deal_value_usd": Decimal(1_500_000_000)},
    ),
    SignalCase(
        SignalType.FINANCING,
        FinancingSignal,
        {"financing_type": "pipe", "amount_usd": 250_000_000.5},
        {"financing_type": "pipe", "amount_usd": Decimal("250000000.5")},
    ),
    SignalCase(
        SignalType.EXECUTIVE_CHANGE,
        ExecutiveChangeSignal,
        {"executive_name": "A. Smith", "position": "CEO", "change_type": "appointed"},
        {"executive_name": "A. Smith", "position": "CEO", "change_type": "appointed"},
    ),
    SignalCase(
        SignalType.PATENT,
        PatentSignal,
        {"patent_number": "US 10,123,456", "expiry_date": "2031-05-01"},
        {"patent_number": "US 10,123,456", "expiry_date": dt.date(2031, 5, 1)},
    ),
    SignalCase(
        SignalType.NEWS,
        NewsSignal,
        {"publisher": "Wire", "sentiment": -0.4, "url": "https://news.example"},
        {"publisher": "Wire", "sentiment": -0.4, "article_url": "https://news.example"},
    ),
]


class TestPolymorphicSignals:
    """Each signal type maps to its subclass, before and after a round trip."""

    def test_every_signal_type_has_a_case(self) -> None:
        assert {case.signal_type for case in SIGNAL_CASES} == set(SignalType)

    @pytest.mark.parametrize("case", SIGNAL_CASES, ids=[c.signal_type.value for c in SIGNAL_CASES])
    async def test_round_trip(
        self, db_session: AsyncSession, parents: Parents, case: SignalCase
    ) -> None:
        signal_type, subclass, data, expected = case
        created = _signal(parents, signal_type=signal_type.value, signal_data=data, severity="high")
        assert type(created) is subclass
        db_session.add(created)
        await db_session.flush()
        db_session.expunge_all()

        loaded = (await db_session.scalars(select(Signal).where(Signal.id == created.id))).one()
        assert type(loaded) is subclass
        assert loaded.signal_type is signal_type
        assert loaded.severity is Severity.HIGH
        assert {name: getattr(loaded, name) for name in expected} == expected

    async def test_subclass_query_selects_only_its_type(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        db_session.add_all(
            [_signal(parents, signal_type="sec_filing"), _signal(parents, signal_type="news")]
        )
        await db_session.flush()
        found = (await db_session.scalars(select(SecFilingSignal))).all()
        assert [type(signal) for signal in found] == [SecFilingSignal]

    async def test_subclass_constructor_sets_the_type(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        signal = PatentSignal(company_id=parents.target.id, event_date=NOW, title="t")
        db_session.add(signal)
        await db_session.flush()
        assert signal.signal_type == "patent"
        assert signal.severity is Severity.MEDIUM  # server default, returned by RETURNING

    def test_accessors_answer_none_for_missing_or_misshaped_values(self) -> None:
        signal = Signal(signal_type="insider_trading", signal_data={"shares": "many"})
        assert isinstance(signal, InsiderTradingSignal)
        assert signal.shares is None
        assert signal.price_usd is None
        assert signal.transaction_type is None
        filing = Signal(signal_type=SignalType.SEC_FILING, signal_data={"filing_type": 8})
        assert isinstance(filing, SecFilingSignal)
        assert filing.filing_type is None


class TestGeneratedColumns:
    """``cash_runway_months`` and ``cash_constrained`` follow cash and burn."""

    @pytest.mark.parametrize(
        ("cash", "burn", "runway", "constrained"),
        [
            (250_000_000, 50_000_000, Decimal("15.00"), False),
            (100_000_000, 50_000_000, Decimal("6.00"), True),
            (100, 300, Decimal("1.00"), True),
            (100, 0, None, False),
            (100, None, None, False),
            (None, 100, None, False),
        ],
    )
    async def test_computed_on_insert(
        self,
        db_session: AsyncSession,
        cash: int | None,
        burn: int | None,
        runway: Decimal | None,
        constrained: bool,
    ) -> None:
        company = Company(
            ticker="RUN", name="Runway", cash_position_usd=cash, quarterly_burn_usd=burn
        )
        db_session.add(company)
        await db_session.flush()
        assert company.cash_runway_months == runway
        assert company.cash_constrained is constrained

    async def test_recomputed_on_update_without_a_reload(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        company = parents.target
        company.cash_position_usd = Decimal(30)
        company.quarterly_burn_usd = Decimal(10)
        await db_session.flush()
        unloaded = inspect(company).unloaded
        assert "cash_runway_months" not in unloaded
        assert company.cash_runway_months == Decimal("9.00")
        assert company.cash_constrained is True


class TestVersioning:
    """Versioned rows count their updates and refuse a stale one."""

    async def test_version_increments(self, db_session: AsyncSession, parents: Parents) -> None:
        assert parents.target.version == 1
        parents.target.name = "Renamed"
        await db_session.flush()
        assert parents.target.version == 2

    async def test_stale_update_is_a_concurrency_error(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        companies = Base.metadata.tables["companies"]
        await db_session.execute(
            update(companies).where(companies.c.id == parents.target.id).values(version=7)
        )
        parents.target.name = "Lost update"
        with pytest.raises(StaleDataError) as caught:
            await db_session.flush()
        assert isinstance(translate_error(caught.value), ConcurrencyError)


class TestServerDefaults:
    """Server-side defaults arrive with the INSERT, so reading them needs no I/O."""

    async def test_defaults_are_loaded_after_flush(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        delivery = _delivery(parents)
        db_session.add(delivery)
        await db_session.flush()
        server_set = {"id", "event_id", "payload", "status", "attempts", "next_attempt_at"}
        assert not (server_set | {"created_at", "updated_at"}) & inspect(delivery).unloaded
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.attempts == 0
        assert delivery.payload == {}
        assert re.fullmatch(r"[0-9a-f-]{36}", delivery.event_id)
        assert delivery.created_at.tzinfo is not None

    async def test_secrets_are_not_loaded_by_queries(
        self, db_session: AsyncSession, parents: Parents
    ) -> None:
        db_session.expunge_all()
        webhook = (await db_session.scalars(select(Webhook))).one()
        with pytest.raises(sa_exc.InvalidRequestError):
            _ = webhook.secret


_NAME_PATTERNS = {
    "p": "pk_{table}",
    "u": "uq_{table}_.+",
    "f": "fk_{table}_.+",
    "c": "ck_{table}_.+",
    "index": "(ix|uq|pk)_{table}(_.+)?",
}


def _expected_names() -> set[tuple[str, str]]:
    """(table, name) of every constraint and index the models declare."""
    names: set[tuple[str, str]] = set()
    for table in Base.metadata.tables.values():
        names.update((table.name, str(c.name)) for c in table.constraints)
        names.update((table.name, str(i.name)) for i in table.indexes)
    return names


class TestNamingConvention:
    """Every constraint and index in the migrated database is named by the convention."""

    async def test_names_follow_the_convention(self, db_session: AsyncSession) -> None:
        constraints = await db_session.execute(
            text(
                "SELECT conrelid::regclass::text, conname, contype::text FROM pg_constraint"
                " WHERE connamespace = 'public'::regnamespace AND contype IN ('p','u','f','c')"
                " AND conrelid::regclass::text <> 'alembic_version'"
                # Partitions (signals_y2026m03) carry their parent's names, or generated ones.
                " AND NOT (SELECT relispartition FROM pg_class WHERE oid = conrelid)"
            )
        )
        indexes = await db_session.execute(
            text(
                "SELECT tablename, indexname, 'index' FROM pg_indexes"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                " AND NOT (SELECT relispartition FROM pg_class"
                " WHERE oid = format('%I.%I', schemaname, tablename)::regclass)"
            )
        )
        live: set[tuple[str, str]] = set()
        for table, name, kind in [*constraints, *indexes]:
            pattern = _NAME_PATTERNS[kind].format(table=re.escape(table))
            assert re.fullmatch(pattern, name), (table, name, kind)
            assert len(name) <= 63
            live.add((table, name))
        assert live == _expected_names()


class TestPackage:
    """``biotech_ma_db.models`` exports every mapped class, in a sorted ``__all__``."""

    def test_every_mapped_class_is_exported(self) -> None:
        mapped = {mapper.class_.__name__ for mapper in Base.registry.mappers}
        assert mapped <= set(models.__all__)

    def test_every_table_is_an_aggregate_module_table(self) -> None:
        assert set(Base.metadata.tables) == {
            "companies",
            "drug_candidates",
            "signals",
            "ma_scores",
            "acquirer_matches",
            "reports",
            "alerts",
            "webhooks",
            "webhook_deliveries",
            "clients",
            "api_keys",
            "audit_log",
        }
