"""The synthetic dataset generator: deterministic, large enough, and within the schema's rules."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import types
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biotech_ma_db import sampledata
from biotech_ma_db.models import DevelopmentPhase, Severity, Signal, SignalType
from biotech_ma_db.sampledata import DatasetSpec

SMALL = DatasetSpec(companies=60, drug_candidates=150, signals=4_000, weeks=20, batch_size=1_000)
TICKER = re.compile(r"^[A-Z]{1,5}$")
COMPONENTS = ("pipeline_score", "financial_score", "strategic_score", "signal_score")


def _ids(rows: list[dict[str, Any]], start: int = 1) -> list[int]:
    return list(range(start, start + len(rows)))


def _everything(spec: DatasetSpec) -> dict[str, Any]:
    companies = sampledata.companies(spec)
    ids = _ids(companies)
    drugs = sampledata.drug_candidates(spec, companies, ids)
    names = [c["name"] for c in companies]
    signals = [row for batch in sampledata.signals(spec, ids, names) for row in batch]
    scores = [row for week in sampledata.weekly_scores(spec, companies, ids, drugs) for row in week]
    buyers = list(zip(_ids(sampledata.acquirers(), 10_000), sampledata.acquirers(), strict=True))
    targets = list(zip(ids, companies, strict=True))[:10]
    matches = list(sampledata.acquirer_matches(spec, targets, buyers))
    return {
        "companies": companies,
        "drugs": drugs,
        "signals": signals,
        "scores": scores,
        "matches": matches,
    }


@pytest.fixture(scope="module", name="small")
def fixture_small() -> dict[str, Any]:
    """Every kind of row of the small dataset."""
    return _everything(SMALL)


class TestDeterminism:
    """The same spec gives the same rows; another seed gives other rows."""

    def test_same_seed_same_data(self, small: dict[str, Any]) -> None:
        assert _everything(SMALL) == small

    def test_different_seed_different_data(self, small: dict[str, Any]) -> None:
        other = _everything(SMALL.with_sizes(seed=SMALL.seed + 1))
        for kind in ("companies", "drugs", "signals", "scores", "matches"):
            assert other[kind] != small[kind], kind

    def test_streams_are_independent(self) -> None:
        more_signals = SMALL.with_sizes(signals=SMALL.signals * 2, weeks=3)
        assert sampledata.companies(more_signals) == sampledata.companies(SMALL)

    def test_dates_follow_today(self) -> None:
        later = SMALL.with_sizes(today=SMALL.today + dt.timedelta(days=10))
        assert later.score_dates[-1] == SMALL.score_dates[-1] + dt.timedelta(days=10)
        assert sampledata.companies(later) == sampledata.companies(SMALL)

    def test_default_anchor_is_fixed(self) -> None:
        assert DatasetSpec().today == sampledata.ANCHOR_DATE


class TestDefaultSizes:
    """The default spec reaches the sizes the demo promises."""

    def test_counts_meet_minimums(self) -> None:
        spec = DatasetSpec()
        minimums = sampledata.MINIMUMS
        companies = sampledata.companies(spec)
        assert len(companies) >= minimums["companies"]
        assert len(sampledata.acquirers()) >= minimums["acquirers"]
        drugs = sampledata.drug_candidates(spec, companies, _ids(companies))
        assert len(drugs) >= minimums["drug_candidates"]
        assert spec.weeks >= minimums["weeks"]
        assert spec.weeks * len(companies) >= minimums["score_rows"]
        assert spec.signal_days >= minimums["signal_days"]

    def test_default_signals_stream_in_batches(self) -> None:
        spec = DatasetSpec()
        stream = sampledata.signals(spec, list(range(1, spec.companies + 1)))
        assert isinstance(stream, types.GeneratorType)
        sizes = [len(batch) for batch in stream]
        assert sum(sizes) == spec.signals >= sampledata.MINIMUMS["signals"]
        assert max(sizes) <= spec.batch_size

    def test_phase_totals(self) -> None:
        totals = sampledata.phase_totals(DatasetSpec())
        assert totals["signals"] == 100_000
        assert totals["scores"] == 26_000

    def test_acquirers_include_big_pharma(self) -> None:
        tickers = {row["ticker"] for row in sampledata.acquirers()}
        assert {"PFE", "MRK", "ABBV", "JNJ", "LLY", "BMY", "AZN", "NVS", "RHHBY"} <= tickers
        assert tickers == set(sampledata.ACQUIRERS)


class TestSpecValidation:
    """Sizes outside their bounds are refused with the field's name."""

    @pytest.mark.parametrize(
        ("field", "value"),
        [("companies", 0), ("signals", -1), ("weeks", -2), ("matches_per_target", 0)],
    )
    def test_out_of_range(self, field: str, value: int) -> None:
        with pytest.raises(ValueError, match=field):
            DatasetSpec(**{field: value})

    def test_with_sizes_ignores_none(self) -> None:
        assert SMALL.with_sizes(companies=None, signals=5) == DatasetSpec(
            companies=60, drug_candidates=150, signals=5, weeks=20, batch_size=1_000
        )


class TestCompanies:
    """Company rows fit the ``companies`` table and look like biotech companies."""

    def test_tickers_unique_and_valid(self, small: dict[str, Any]) -> None:
        tickers = [row["ticker"] for row in small["companies"]]
        assert all(TICKER.match(t) for t in tickers)
        assert len(set(tickers)) == len(tickers)
        assert not set(tickers) & set(sampledata.ACQUIRERS)
        assert all(TICKER.match(row["ticker"]) for row in sampledata.acquirers())

    def test_names_unique(self, small: dict[str, Any]) -> None:
        names = [row["name"] for row in small["companies"]]
        assert len(set(names)) == len(names)

    def test_financials_plausible(self) -> None:
        rows = sampledata.companies(DatasetSpec())
        for row in rows:
            assert Decimal(50_000_000) <= row["market_cap_usd"] <= Decimal(50_000_000_000)
            for key in ("cash_position_usd", "total_debt_usd", "revenue_ttm_usd"):
                assert row[key] >= 0
            assert row["quarterly_burn_usd"] > 0
            assert 1 <= len(row["therapeutic_areas"]) <= 3
            assert set(row["therapeutic_areas"]) <= set(sampledata.THERAPEUTIC_AREAS)
            assert 1985 <= row["founded_year"] <= 2023
            assert row["employee_count"] > 0
        runways = [r["cash_position_usd"] / r["quarterly_burn_usd"] * 3 for r in rows]
        constrained = sum(runway < 12 for runway in runways)
        assert 0.1 * len(rows) < constrained < 0.5 * len(rows)
        caps = sorted(r["market_cap_usd"] for r in rows)
        assert caps[len(caps) // 2] < Decimal(3_000_000_000)  # most biotechs are small
        assert caps[-1] > Decimal(10_000_000_000)

    def test_many_companies_stay_unique(self) -> None:
        rows = sampledata.companies(DatasetSpec(companies=3_000))
        assert len({r["ticker"] for r in rows}) == len({r["name"] for r in rows}) == 3_000


class TestDrugCandidates:
    """Every company has a pipeline; names are unique within a company."""

    def test_shape(self, small: dict[str, Any]) -> None:
        drugs = small["drugs"]
        assert len(drugs) == SMALL.drug_candidates
        assert {d["company_id"] for d in drugs} == set(_ids(small["companies"]))
        pairs = [(d["company_id"], d["drug_name"]) for d in drugs]
        assert len(set(pairs)) == len(pairs)
        phases = {str(p) for p in DevelopmentPhase}
        assert {d["phase"] for d in drugs} <= phases
        for drug in drugs:
            assert drug["peak_sales_estimate_usd"] > 0
            assert drug["patent_expiry_date"] > SMALL.today

    def test_fewer_drugs_than_companies(self) -> None:
        spec = SMALL.with_sizes(drug_candidates=10)
        companies = sampledata.companies(spec)
        assert len(sampledata.drug_candidates(spec, companies, _ids(companies))) == 10

    def test_mismatched_ids_refused(self, small: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="same length"):
            sampledata.drug_candidates(SMALL, small["companies"], [1])


class TestSignals:
    """Signals cover every type with the ``signal_data`` keys their models read."""

    def test_values_within_schema(self, small: dict[str, Any]) -> None:
        rows = small["signals"]
        assert len(rows) == SMALL.signals
        assert {r["signal_type"] for r in rows} == {str(t) for t in SignalType}
        assert {r["severity"] for r in rows} <= {str(s) for s in Severity}
        start = dt.datetime.combine(
            SMALL.today - dt.timedelta(days=SMALL.signal_days), dt.time(), tzinfo=dt.UTC
        )
        end = dt.datetime.combine(SMALL.today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        for row in rows:
            assert -100 <= row["ma_impact_score"] <= 100
            assert start <= row["event_date"] < end
            assert row["title"]
            assert isinstance(row["signal_data"], dict)

    def test_all_severities_occur(self, small: dict[str, Any]) -> None:
        counts = Counter(r["severity"] for r in small["signals"])
        assert set(counts) == {str(s) for s in Severity}
        assert counts["low"] > counts["critical"]

    @pytest.mark.parametrize(
        ("kind", "attribute"),
        [
            ("sec_filing", "filing_type"),
            ("fda_approval", "decision"),
            ("clinical_trial", "nct_id"),
            ("insider_trading", "value_usd"),
            ("partnership", "deal_value_usd"),
            ("financing", "amount_usd"),
            ("executive_change", "position"),
            ("patent", "expiry_date"),
            ("news", "sentiment"),
        ],
    )
    def test_model_accessors_read_the_data(
        self, small: dict[str, Any], kind: str, attribute: str
    ) -> None:
        row = next(r for r in small["signals"] if r["signal_type"] == kind)
        signal = Signal(**row)
        assert type(signal).__name__ != "Signal"
        assert getattr(signal, attribute) is not None

    def test_no_companies_no_signals(self) -> None:
        assert list(sampledata.signals(SMALL, [])) == []


class TestScores:
    """Weekly scores: one per company and week, in range, with 30/90-day changes."""

    def test_grid(self, small: dict[str, Any]) -> None:
        scores = small["scores"]
        assert len(scores) == SMALL.weeks * SMALL.companies
        dates = sorted({s["score_date"] for s in scores})
        assert dates == SMALL.score_dates
        assert dates[-1] == SMALL.today
        assert all((b - a).days == 7 for a, b in itertools.pairwise(dates))

    def test_ranges_and_text(self, small: dict[str, Any]) -> None:
        for score in small["scores"]:
            for key in ("total_score", *COMPONENTS):
                assert 0 <= score[key] <= 100, key
            assert score["key_drivers"]
            assert all(isinstance(text, str) for text in score["key_drivers"])
            assert isinstance(score["risk_factors"], list)
            assert score["model_version"] == sampledata.MODEL_VERSION

    def test_changes(self, small: dict[str, Any]) -> None:
        by_company: dict[int, list[dict[str, Any]]] = {}
        for score in small["scores"]:
            by_company.setdefault(score["company_id"], []).append(score)
        history = by_company[1]
        assert all(s["score_change_30d"] is None for s in history[:5])
        assert history[5]["score_change_30d"] == (
            history[5]["total_score"] - history[0]["total_score"]
        )
        assert history[13]["score_change_90d"] == (
            history[13]["total_score"] - history[0]["total_score"]
        )
        assert history[12]["score_change_90d"] is None


class TestAcquirerMatches:
    """Matches rank acquirers by fit, with an ordered value range."""

    def test_matches(self, small: dict[str, Any]) -> None:
        companies = dict(zip(_ids(small["companies"]), small["companies"], strict=True))
        buyers = dict(
            zip(_ids(sampledata.acquirers(), 10_000), sampledata.acquirers(), strict=True)
        )
        assert len(small["matches"]) == 10
        for target_id, matches in small["matches"]:
            assert len(matches) == SMALL.matches_per_target
            fits = [m["strategic_fit_score"] for m in matches]
            assert fits == sorted(fits, reverse=True)
            assert len({m["acquirer_company_id"] for m in matches}) == len(matches)
            for match in matches:
                # The repository assigns these from the fit order.
                assert not {"target_company_id", "match_rank", "is_top_match"} & set(match)
                assert match["acquirer_company_id"] != target_id
                assert 0 <= match["strategic_fit_score"] <= 100
                assert 0 < match["estimated_value_low_usd"] <= match["estimated_value_high_usd"]
                assert match["estimated_value_low_usd"] >= companies[target_id]["market_cap_usd"]
                assert 0 < match["estimated_premium_pct"] < 100
                overlap = set(match["therapeutic_overlap"])
                assert overlap <= set(companies[target_id]["therapeutic_areas"])
                assert overlap <= set(buyers[match["acquirer_company_id"]]["therapeutic_areas"])


class TestAnySeed:
    """Whatever the seed, the rows satisfy the schema's constraints."""

    @settings(max_examples=15, deadline=None)
    @given(seed=st.integers(min_value=0, max_value=2**32))
    def test_constraints_hold(self, seed: int) -> None:
        spec = DatasetSpec(companies=30, drug_candidates=40, signals=300, weeks=3, seed=seed)
        data = _everything(spec)
        tickers = [c["ticker"] for c in data["companies"]]
        assert len(set(tickers)) == 30
        assert all(TICKER.match(t) for t in tickers)
        assert all(-100 <= s["ma_impact_score"] <= 100 for s in data["signals"])
        assert all(0 <= s["total_score"] <= 100 for s in data["scores"])
        for _, matches in data["matches"]:
            assert all(
                m["estimated_value_low_usd"] <= m["estimated_value_high_usd"] for m in matches
            )
