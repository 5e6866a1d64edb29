"""``top`` and ``company``: read the rankings and one company's profile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from biotech_ma_db.cli._app import app
from biotech_ma_db.cli._common import (
    EXIT_USAGE,
    DataDirOption,
    JsonOption,
    UrlOption,
    console,
    fail,
    parse_amount,
    run,
)
from biotech_ma_db.cli._reads import top_targets
from biotech_ma_db.cli._render import (
    money,
    percentile,
    print_json,
    ranked_as_dict,
    runway,
    sparkline,
    targets_table,
)
from biotech_ma_db.cli._target import open_database, resolve
from biotech_ma_db.database import Database
from biotech_ma_db.models import AcquirerMatch, Company, DrugCandidate, MAScore, Signal

__all__ = ["company", "top"]

_SCORE_HISTORY = 52
_MAX_SIGNALS = 500
_PHASES = ["approved", "nda_bla_submitted", "phase_3", "phase_2", "phase_1", "preclinical"]


async def _top(
    url: str | None,
    data_dir: Path | None,
    *,
    limit: int,
    areas: Sequence[str],
    min_cap: Decimal | None,
    max_cap: Decimal | None,
    cash_constrained: bool,
    as_json: bool,
) -> None:
    target = await resolve(url, data_dir)
    async with open_database(target) as db:
        rows = await top_targets(
            db,
            limit=limit,
            therapeutic_areas=areas,
            min_market_cap=min_cap,
            max_market_cap=max_cap,
            cash_constrained=cash_constrained,
        )
    if as_json:
        print_json([ranked_as_dict(rank, row) for rank, row in enumerate(rows, start=1)])
        return
    out = console()
    if not rows:
        out.print("no scored company matches (load data with `biotech-ma-db seed` or `demo`)")
        return
    out.print(targets_table(rows, f"Top {len(rows)} M&A targets on {rows[0].score.score_date}"))


@app.command()
def top(
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many targets (≥ 1).")] = 20,
    therapeutic_area: Annotated[
        list[str] | None,
        typer.Option(
            "--therapeutic-area",
            "-a",
            help="Only companies working in this area (repeat for any of several).",
            show_default=False,
        ),
    ] = None,
    min_market_cap: Annotated[
        str | None,
        typer.Option(help="Smallest market cap, e.g. 500M or 2B.", show_default=False),
    ] = None,
    max_market_cap: Annotated[
        str | None,
        typer.Option(help="Largest market cap, e.g. 10B.", show_default=False),
    ] = None,
    cash_constrained: Annotated[
        bool, typer.Option("--cash-constrained", help="Only companies with < 12 months runway.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The highest-scored M&A targets on the latest score date."""
    if limit < 1:
        fail(f"--limit must be at least 1 (got {limit})", EXIT_USAGE)
    areas = [area.strip().lower().replace(" ", "_") for area in therapeutic_area or []]
    min_cap = parse_amount("--min-market-cap", min_market_cap)
    max_cap = parse_amount("--max-market-cap", max_market_cap)
    if min_cap is not None and max_cap is not None and min_cap > max_cap:
        fail("--min-market-cap is larger than --max-market-cap", EXIT_USAGE)
    run(
        lambda: _top(
            url,
            data_dir,
            limit=limit,
            areas=areas,
            min_cap=min_cap,
            max_cap=max_cap,
            cash_constrained=cash_constrained,
            as_json=as_json,
        )
    )


@dataclass(frozen=True, slots=True)
class _Profile:
    company: Company
    drugs: list[DrugCandidate]
    signals: list[Signal]
    scores: list[MAScore]
    matches: list[tuple[AcquirerMatch, Company]]


async def _company_profile(db: Database, ticker: str, signal_count: int) -> _Profile:
    async with db.unit_of_work(read_only=True) as uow:
        found = await uow.companies.get_by_ticker(ticker)
        if found is None:
            fail(f"no company with ticker {ticker!r}")
        drugs = await uow.drug_candidates.get_by_company(found.id)
        signals = (
            await uow.signals.get_by_company(found.id, limit=signal_count) if signal_count else []
        )
        # The newest snapshots whatever their age: get_history() counts days from today,
        # and a dataset seeded with --today may lie in the past.
        scores = (
            await uow.session.scalars(
                select(MAScore)
                .where(MAScore.company_id == found.id)
                .order_by(MAScore.score_date.desc())
                .limit(_SCORE_HISTORY)
            )
        ).all()
        matches = await uow.acquirer_matches.get_top_matches_for_target(found.id, limit=10)
        return _Profile(
            found,
            drugs,
            signals,
            list(reversed(scores)),
            [(match, match.acquirer_company) for match in matches],
        )


def _phase_order(drug: DrugCandidate) -> int:
    phase = str(drug.phase)
    return _PHASES.index(phase) if phase in _PHASES else len(_PHASES)


def _profile_as_dict(profile: _Profile) -> dict[str, object]:
    firm = profile.company
    return {
        "ticker": firm.ticker,
        "name": firm.name,
        "exchange": firm.exchange,
        "headquarters_country": firm.headquarters_country,
        "founded_year": firm.founded_year,
        "employee_count": firm.employee_count,
        "market_cap_usd": firm.market_cap_usd,
        "cash_position_usd": firm.cash_position_usd,
        "quarterly_burn_usd": firm.quarterly_burn_usd,
        "total_debt_usd": firm.total_debt_usd,
        "revenue_ttm_usd": firm.revenue_ttm_usd,
        "cash_runway_months": firm.cash_runway_months,
        "cash_constrained": firm.cash_constrained,
        "therapeutic_areas": list(firm.therapeutic_areas),
        "pipeline": [
            {
                "drug_name": d.drug_name,
                "phase": str(d.phase),
                "indication": d.indication,
                "therapeutic_area": d.therapeutic_area,
                "regulatory_designations": list(d.regulatory_designations),
                "peak_sales_estimate_usd": d.peak_sales_estimate_usd,
            }
            for d in sorted(profile.drugs, key=_phase_order)
        ],
        "signals": [
            {
                "event_date": s.event_date,
                "signal_type": str(s.signal_type),
                "severity": str(s.severity),
                "ma_impact_score": s.ma_impact_score,
                "title": s.title,
            }
            for s in profile.signals
        ],
        "score_history": [
            {"score_date": s.score_date, "total_score": s.total_score} for s in profile.scores
        ],
        "acquirer_matches": [
            {
                "acquirer": acquirer.ticker,
                "strategic_fit_score": m.strategic_fit_score,
                "estimated_value_low_usd": m.estimated_value_low_usd,
                "estimated_value_high_usd": m.estimated_value_high_usd,
            }
            for m, acquirer in profile.matches
        ],
    }


def _facts_table(profile: _Profile) -> Table:
    firm = profile.company
    facts = Table(title=f"{firm.ticker} — {firm.name}", title_justify="left", show_header=False)
    facts.add_column("key", style="bold")
    facts.add_column("value")
    facts.add_row("exchange", f"{firm.exchange or '—'} · {firm.headquarters_country or '—'}")
    facts.add_row("founded / staff", f"{firm.founded_year or '—'} / {firm.employee_count or '—'}")
    facts.add_row("market cap", money(firm.market_cap_usd))
    facts.add_row(
        "cash / quarterly burn",
        f"{money(firm.cash_position_usd)} / {money(firm.quarterly_burn_usd)}",
    )
    facts.add_row("runway", runway(firm))
    facts.add_row(
        "debt / revenue (TTM)", f"{money(firm.total_debt_usd)} / {money(firm.revenue_ttm_usd)}"
    )
    facts.add_row("therapeutic areas", ", ".join(firm.therapeutic_areas) or "—")
    if profile.scores:
        latest = profile.scores[-1]
        facts.add_row(
            "M&A score",
            f"{float(latest.total_score):.1f} on {latest.score_date} "
            f"(percentile {percentile(latest.percentile_rank)})",
        )
        facts.add_row(
            f"last {len(profile.scores)} scores", sparkline([s.total_score for s in profile.scores])
        )
        facts.add_row("key drivers", "; ".join(latest.key_drivers) or "—")
        facts.add_row("risk factors", "; ".join(latest.risk_factors) or "—")
    return facts


def _print_profile(profile: _Profile, out: Console) -> None:
    out.print(_facts_table(profile))

    pipeline = Table(title="Pipeline", title_justify="left")
    for column in ("Drug", "Phase", "Indication", "Mechanism", "Designations", "Peak sales"):
        pipeline.add_column(column, justify="right" if column == "Peak sales" else "left")
    for drug in sorted(profile.drugs, key=_phase_order):
        pipeline.add_row(
            drug.drug_name,
            str(drug.phase),
            drug.indication or "—",
            drug.mechanism_of_action or "—",
            ", ".join(drug.regulatory_designations) or "—",
            money(drug.peak_sales_estimate_usd),
        )
    out.print()
    out.print(pipeline)

    recent = Table(title=f"Last {len(profile.signals)} signals", title_justify="left")
    for column in ("Date", "Type", "Severity", "Impact", "Title"):
        recent.add_column(column, justify="right" if column == "Impact" else "left")
    for signal in profile.signals:
        impact = signal.ma_impact_score
        recent.add_row(
            f"{signal.event_date:%Y-%m-%d}",
            str(signal.signal_type),
            str(signal.severity),
            "—" if impact is None else f"{float(impact):+.0f}",
            signal.title,
        )
    out.print()
    out.print(recent)

    if profile.matches:
        buyers = Table(title="Likely acquirers", title_justify="left")
        for column in ("Rank", "Acquirer", "Fit", "Value range", "Rationale"):
            buyers.add_column(column)
        for match, acquirer in profile.matches:
            buyers.add_row(
                str(match.match_rank or "—"),
                acquirer.ticker,
                f"{float(match.strategic_fit_score):.1f}",
                f"{money(match.estimated_value_low_usd)}–{money(match.estimated_value_high_usd)}",
                match.synergy_rationale or "—",
            )
        out.print()
        out.print(buyers)


async def _company(
    url: str | None, data_dir: Path | None, ticker: str, signal_count: int, as_json: bool
) -> None:
    target = await resolve(url, data_dir)
    async with open_database(target) as db:
        profile = await _company_profile(db, ticker, signal_count)
    if as_json:
        print_json(_profile_as_dict(profile))
    else:
        _print_profile(profile, console())


@app.command()
def company(
    ticker: Annotated[str, typer.Argument(help="Exchange ticker, e.g. ABCD.")],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    signal_count: Annotated[
        int, typer.Option("--signals", help="How many recent signals to show.")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """Profile of one company: financials, pipeline, recent signals, score history."""
    if not 0 <= signal_count <= _MAX_SIGNALS:
        fail(f"--signals must be between 0 and {_MAX_SIGNALS} (got {signal_count})", EXIT_USAGE)
    run(lambda: _company(url, data_dir, ticker.strip().upper(), signal_count, as_json))
