"""How the commands show things: money, sparklines, JSON and the tables they share."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal

import typer
from rich.table import Table
from rich.text import Text

from biotech_ma_db.cli._reads import Ranked
from biotech_ma_db.cli._target import Target
from biotech_ma_db.database import HealthReport, PoolStatus, ReplicaStatus
from biotech_ma_db.models import AcquirerMatch, Company

__all__ = [
    "acquirers_table",
    "health_table",
    "money",
    "percentile",
    "print_json",
    "ranked_as_dict",
    "replica_line",
    "runway",
    "sparkline",
    "targets_table",
]

_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | Decimal]) -> str:
    """A unicode sparkline (``▁▂▃▄▅▆▇█``) of ``values``, one character per value."""
    numbers = [float(v) for v in values]
    if not numbers:
        return ""
    low, high = min(numbers), max(numbers)
    if high - low < 1e-9:
        return _SPARK[len(_SPARK) // 2] * len(numbers)
    scale = (len(_SPARK) - 1) / (high - low)
    return "".join(_SPARK[round((n - low) * scale)] for n in numbers)


def money(value: Decimal | float | None) -> str:
    """Dollars in short form (``$1.5B``), or ``—`` when unknown."""
    if value is None:
        return "—"
    amount = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(amount) >= limit:
            return f"${amount / limit:,.1f}{suffix}"
    return f"${amount:,.0f}"


def percentile(value: Decimal | None) -> str:
    """A 0..1 percentile rank as a percentage, or ``—``."""
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def runway(company: Company) -> str:
    """Months of cash left, flagged when the company is cash-constrained."""
    if company.cash_runway_months is None:
        return "cash positive"
    flag = " ⚠" if company.cash_constrained else ""
    return f"{float(company.cash_runway_months):.0f} mo{flag}"


def _change(value: Decimal | None) -> Text:
    if value is None:
        return Text("—", style="dim")
    number = float(value)
    style = "green" if number > 0 else "red" if number < 0 else ""
    return Text(f"{number:+.1f}", style=style)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(payload: object) -> None:
    """Print ``payload`` as indented JSON (decimals as numbers, dates as ISO strings)."""
    typer.echo(json.dumps(payload, default=_json_default, indent=2, ensure_ascii=False))


def ranked_as_dict(rank: int, row: Ranked) -> dict[str, object]:
    """One row of ``top --json``."""
    score, company = row.score, row.company
    return {
        "rank": rank,
        "ticker": company.ticker,
        "name": company.name,
        "score_date": score.score_date,
        "total_score": score.total_score,
        "percentile_rank": score.percentile_rank,
        "score_change_30d": score.score_change_30d,
        "score_change_90d": score.score_change_90d,
        "pipeline_score": score.pipeline_score,
        "financial_score": score.financial_score,
        "strategic_score": score.strategic_score,
        "signal_score": score.signal_score,
        "key_drivers": list(score.key_drivers),
        "risk_factors": list(score.risk_factors),
        "market_cap_usd": company.market_cap_usd,
        "cash_runway_months": company.cash_runway_months,
        "cash_constrained": company.cash_constrained,
        "therapeutic_areas": list(company.therapeutic_areas),
    }


def targets_table(rows: Sequence[Ranked], title: str) -> Table:
    """The ranked targets with their scores, changes, drivers and runway."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("Ticker", style="bold cyan")
    table.add_column("Company")
    table.add_column("Score", justify="right")
    table.add_column("Pctl", justify="right")
    table.add_column("Δ30d", justify="right")
    table.add_column("Δ90d", justify="right")
    table.add_column("Key drivers")
    table.add_column("Runway", justify="right")
    for rank, row in enumerate(rows, start=1):
        table.add_row(
            str(rank),
            row.company.ticker,
            row.company.name,
            f"{float(row.score.total_score):.1f}",
            percentile(row.score.percentile_rank),
            _change(row.score.score_change_30d),
            _change(row.score.score_change_90d),
            "\n".join(row.score.key_drivers),
            runway(row.company),
        )
    return table


def acquirers_table(
    rows: Sequence[Ranked], best: dict[int, tuple[AcquirerMatch, Company]]
) -> Table:
    """The best acquirer of each ranked target (``best`` from ``best_acquirers``)."""
    table = Table(title="Best acquirer per target", title_justify="left")
    table.add_column("Target", style="bold cyan")
    table.add_column("Acquirer")
    table.add_column("Fit", justify="right")
    table.add_column("Value range", justify="right")
    table.add_column("Premium", justify="right")
    table.add_column("Overlap")
    for row in rows:
        found = best.get(row.company.id)
        if found is None:
            table.add_row(row.company.ticker, Text("no match yet", style="dim"), "", "", "", "")
            continue
        match, acquirer = found
        premium = match.estimated_premium_pct
        table.add_row(
            row.company.ticker,
            f"{acquirer.ticker} ({acquirer.name})",
            f"{float(match.strategic_fit_score):.1f}",
            f"{money(match.estimated_value_low_usd)}–{money(match.estimated_value_high_usd)}",
            "—" if premium is None else f"{float(premium):.0f}%",
            ", ".join(match.therapeutic_overlap) or "—",
        )
    return table


def health_table(report: HealthReport, pool: PoolStatus, target: Target) -> Table:
    """The health probe of ``target`` and its pool in one key/value table."""
    table = Table(title="Health and pool", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("database", target.label)
    table.add_row("status", Text("ok", style="green") if report.ok else Text("DOWN", style="red"))
    table.add_row("latency", f"{report.latency_ms:.1f} ms")
    table.add_row("server version", report.server_version or "—")
    table.add_row("in recovery", "—" if report.in_recovery is None else str(report.in_recovery))
    if report.error:
        table.add_row("error", report.error)
    table.add_row(
        "pool",
        f"size {pool.size}, checked in {pool.checked_in}, checked out {pool.checked_out}, "
        f"overflow {pool.overflow}/{pool.max_overflow}, timeout {pool.timeout:g} s",
    )
    for replica in report.replicas:
        table.add_row(f"replica {replica.url}", replica_line(replica))
    return table


def replica_line(replica: ReplicaStatus) -> str:
    """One read replica's rotation state, lag and pool, on one line."""
    state = "in rotation" if replica.in_rotation else "OUT of rotation"
    lag_bytes = "—" if replica.lag_bytes is None else f"{replica.lag_bytes:,} bytes"
    lag_seconds = "—" if replica.lag_seconds is None else f"{replica.lag_seconds:.1f} s"
    pool = replica.pool
    line = (
        f"{state}, lag {lag_bytes} / {lag_seconds}, pool size {pool.size}, "
        f"checked out {pool.checked_out}"
    )
    return f"{line}: {replica.error}" if replica.error else line
