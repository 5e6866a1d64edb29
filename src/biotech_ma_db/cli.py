"""The ``biotech-ma-db`` command line.

Every command that needs a database takes ``--url`` (or ``DATABASE_URL``); without one it
uses the embedded PostgreSQL in ``--data-dir`` (or ``BIOTECH_MA_DB_DATA_DIR``), started on
demand, with a database named ``biotech_ma``::

    biotech-ma-db demo                     # embedded server, migrations, data, report
    biotech-ma-db top --limit 5 --json
    biotech-ma-db company ABCD
    biotech-ma-db --help                   # every command has its own --help too

Commands are small synchronous functions that validate their arguments and hand over to
one ``async`` helper through :func:`_run`, which turns the library's errors into a
one-line ``error: ...`` on stderr and a non-zero exit code: 1 when something failed, 2
for a bad argument.  Tracebacks are shown only with ``BIOTECH_MA_DB_DEBUG=1``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import re
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from biotech_ma_db import embedded, migrations, roles, sampledata
from biotech_ma_db.database import Database, HealthReport, PoolStatus
from biotech_ma_db.errors import DatabaseError, DatabaseUnavailableError, translate_error
from biotech_ma_db.models import AcquirerMatch, Base, Company, DrugCandidate, MAScore, Signal
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["app", "main", "sparkline"]

T = TypeVar("T")

DATABASE_NAME = "biotech_ma"
"""The database the CLI creates and uses on the embedded server."""

DEBUG_ENV = "BIOTECH_MA_DB_DEBUG"
_ACTOR = "biotech-ma-db cli"
_NON_TTY_WIDTH = 120
_SPARK = "▁▂▃▄▅▆▇█"
_EXIT_FAILURE = 1
_EXIT_USAGE = 2
_DRUGS_PER_TEN_COMPANIES = 32
_SCORE_HISTORY = 52
_MAX_SIGNALS = 500

app = typer.Typer(
    name="biotech-ma-db",
    help="Database tools of the biotech M&A predictor: demo data, rankings, migrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
migrate_app = typer.Typer(
    help="Apply, revert and inspect schema migrations (Alembic).", no_args_is_help=True
)
embedded_app = typer.Typer(
    help="Run the embedded PostgreSQL server (no install, no Docker).", no_args_is_help=True
)
app.add_typer(migrate_app, name="migrate")
app.add_typer(embedded_app, name="embedded")

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="DATABASE_URL",
        help="PostgreSQL URL of the target database. Default: the embedded server.",
        show_default=False,
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar=embedded.DATA_DIR_ENV,
        help="Data folder of the embedded PostgreSQL.",
        show_default="~/.local/share/biotech-ma-db/postgres",
        file_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TodayOption = Annotated[
    str | None,
    typer.Option(help="Anchor date of the data, YYYY-MM-DD.", show_default="today, UTC"),
]


# --- plumbing --------------------------------------------------------------------------


def _console() -> Console:
    """A stdout console that keeps tables readable when piped (not a terminal)."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else _NON_TTY_WIDTH
    return Console(file=sys.stdout, width=width, highlight=False, soft_wrap=True)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _fail(message: str, code: int = _EXIT_FAILURE) -> NoReturn:
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code)


_HINTS = {
    "42P01": "the schema is missing: run `biotech-ma-db migrate upgrade` first",
    "3D000": "the database does not exist",
    "28P01": "authentication failed",
    "28000": "the server refused the role or host",
}


def _describe_error(exc: BaseException) -> str:
    translated = translate_error(exc)
    message = str(translated) or type(translated).__name__
    hint = _HINTS.get(getattr(translated, "sqlstate", None) or "")
    return f"{message} ({hint})" if hint else message


def _run(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one command's async helper; errors become ``error: ...`` and exit code 1."""
    try:
        with warnings.catch_warnings():
            # platformdirs complains about XDG_RUNTIME_DIR each time the wheel is used.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            return asyncio.run(make_coro())
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except (DatabaseError, SQLAlchemyError, ValueError, OSError) as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        _fail(_describe_error(exc))
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)")


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a command connects: an explicit URL, or the embedded server."""

    url: str
    server: embedded.EmbeddedServer | None = None

    @property
    def label(self) -> str:
        if self.server is not None:
            return f"embedded PostgreSQL in {self.server.data_dir} (database {DATABASE_NAME})"
        return make_url(self.url).render_as_string(hide_password=True)


def _configured_url(url: str | None) -> str | None:
    """``--url``/``DATABASE_URL``, else a ``DATABASE_URL`` from a ``.env`` file.

    A malformed URL exits 2 here, before anything connects.
    """
    if url is not None and url.strip():
        source = "DATABASE_URL" if os.environ.get("DATABASE_URL") == url else "--url"
        url = url.strip()
    else:
        secret = DatabaseSettings().database_url
        if secret is None:
            return None
        source, url = "DATABASE_URL (.env)", secret.get_secret_value()
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        _fail(f"{source} is not a valid database URL", _EXIT_USAGE)
    if backend not in {"postgresql", "postgres"}:
        _fail(f"{source} must be a postgresql:// URL (got {backend}://)", _EXIT_USAGE)
    return url


async def _resolve(url: str | None, data_dir: Path | None) -> _Target:
    explicit = _configured_url(url)
    if explicit is not None:
        return _Target(explicit)
    server = await asyncio.to_thread(embedded.start, data_dir)
    await _ensure_database(server, DATABASE_NAME)
    return _Target(server.url(DATABASE_NAME), server)


async def _ensure_database(server: embedded.EmbeddedServer, name: str) -> None:
    """Create ``name`` on the embedded server unless it exists (admin connection)."""
    import asyncpg  # noqa: PLC0415 — the driver's own API only for this admin statement

    connection = await asyncpg.connect(
        user="postgres", database="postgres", host=str(server.socket_dir), port=server.port
    )
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError:
        pass  # another command created it a moment ago
    finally:
        await connection.close()


@asynccontextmanager
async def _database(target: _Target) -> AsyncIterator[Database]:
    """A ``Database`` for ``target`` (pool settings from ``DB_*``); says where it failed."""
    async with Database.from_url(target.url) as db:
        try:
            yield db
        except DatabaseUnavailableError as exc:
            raise DatabaseUnavailableError(f"cannot reach {target.label}: {exc}") from exc


# --- formatting helpers ----------------------------------------------------------------


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


def _money(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    amount = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(amount) >= limit:
            return f"${amount / limit:,.1f}{suffix}"
    return f"${amount:,.0f}"


def _change(value: Decimal | None) -> Text:
    if value is None:
        return Text("—", style="dim")
    number = float(value)
    style = "green" if number > 0 else "red" if number < 0 else ""
    return Text(f"{number:+.1f}", style=style)


def _runway(company: Company) -> str:
    if company.cash_runway_months is None:
        return "cash positive"
    flag = " ⚠" if company.cash_constrained else ""
    return f"{float(company.cash_runway_months):.0f} mo{flag}"


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _print_json(payload: object) -> None:
    typer.echo(json.dumps(payload, default=_json_default, indent=2, ensure_ascii=False))


_AMOUNT = re.compile(r"^\$?\s*(\d+(?:\.\d+)?)\s*([kmbt]?)$", re.IGNORECASE)
_MULTIPLIERS = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def _parse_amount(option: str, raw: str | None) -> Decimal | None:
    """``"500M"``, ``"1.5B"``, ``"$2b"`` or ``"250000000"`` as dollars; bad input exits 2."""
    if raw is None:
        return None
    match = _AMOUNT.match(raw.strip().replace(",", "").replace("_", ""))
    if match is None:
        _fail(f"{option} must be an amount such as 500M or 1.5B (got {raw!r})", _EXIT_USAGE)
    number, suffix = match.groups()
    return Decimal(number) * Decimal(str(_MULTIPLIERS[suffix.lower()]))


def _parse_date(option: str, raw: str | None) -> dt.date | None:
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        _fail(f"{option} must be a date as YYYY-MM-DD (got {raw!r})", _EXIT_USAGE)


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# --- queries the commands share --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ranked:
    score: MAScore
    company: Company


async def _latest_score_date(db: Database) -> dt.date | None:
    async with db.session() as session:
        latest: dt.date | None = await session.scalar(select(func.max(MAScore.score_date)))
        return latest


async def _top_targets(
    db: Database,
    *,
    limit: int,
    therapeutic_areas: Sequence[str] = (),
    min_market_cap: Decimal | None = None,
    max_market_cap: Decimal | None = None,
    cash_constrained: bool = False,
) -> list[_Ranked]:
    latest = await _latest_score_date(db)
    if latest is None:
        return []
    statement = (
        select(MAScore, Company)
        .join(Company, Company.id == MAScore.company_id)
        .where(MAScore.score_date == latest)
        .order_by(MAScore.total_score.desc(), Company.ticker)
        .limit(limit)
    )
    if therapeutic_areas:
        statement = statement.where(Company.therapeutic_areas.overlap(list(therapeutic_areas)))
    if min_market_cap is not None:
        statement = statement.where(Company.market_cap_usd >= min_market_cap)
    if max_market_cap is not None:
        statement = statement.where(Company.market_cap_usd <= max_market_cap)
    if cash_constrained:
        statement = statement.where(Company.cash_constrained.is_(True))
    async with db.session() as session:
        rows = (await session.execute(statement)).all()
    return [_Ranked(score, company) for score, company in rows]


async def _best_acquirers(
    db: Database, target_ids: Sequence[int]
) -> dict[int, tuple[AcquirerMatch, Company]]:
    if not target_ids:
        return {}
    statement = (
        select(AcquirerMatch, Company)
        .join(Company, Company.id == AcquirerMatch.acquirer_company_id)
        .where(AcquirerMatch.target_company_id.in_(list(target_ids)))
        .order_by(
            AcquirerMatch.target_company_id,
            AcquirerMatch.match_rank.asc().nulls_last(),
            AcquirerMatch.strategic_fit_score.desc(),
        )
    )
    best: dict[int, tuple[AcquirerMatch, Company]] = {}
    async with db.session() as session:
        for match, acquirer in (await session.execute(statement)).all():
            best.setdefault(match.target_company_id, (match, acquirer))
    return best


async def _signal_counts(db: Database, since: dt.datetime) -> list[tuple[str, int, int]]:
    """``(signal type, signals, high or critical)`` since ``since``, busiest first."""
    severe = Signal.severity.in_(["high", "critical"])
    statement = (
        select(
            Signal.signal_type,
            func.count(),
            func.count().filter(severe),
        )
        .where(Signal.event_date >= since)
        .group_by(Signal.signal_type)
        .order_by(func.count().desc())
    )
    async with db.session() as session:
        rows = (await session.execute(statement)).all()
    return [(str(kind), int(total), int(high)) for kind, total, high in rows]


async def _count(db: Database, model: type[Base]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --- rendering -------------------------------------------------------------------------


def _ranked_as_dict(rank: int, row: _Ranked) -> dict[str, object]:
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


def _percentile(value: Decimal | None) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def _targets_table(rows: Sequence[_Ranked], title: str) -> Table:
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
            _percentile(row.score.percentile_rank),
            _change(row.score.score_change_30d),
            _change(row.score.score_change_90d),
            "\n".join(row.score.key_drivers),
            _runway(row.company),
        )
    return table


def _acquirers_table(
    rows: Sequence[_Ranked], best: dict[int, tuple[AcquirerMatch, Company]]
) -> Table:
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
            f"{_money(match.estimated_value_low_usd)}–{_money(match.estimated_value_high_usd)}",
            "—" if premium is None else f"{float(premium):.0f}%",
            ", ".join(match.therapeutic_overlap) or "—",
        )
    return table


def _health_table(report: HealthReport, pool: PoolStatus, target: _Target) -> Table:
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
    return table


# --- demo and seed ---------------------------------------------------------------------


def _spec(
    *,
    companies: int,
    drug_candidates: int | None,
    signals: int,
    weeks: int,
    match_targets: int | None,
    seed: int,
    today: str | None,
) -> sampledata.DatasetSpec:
    """The dataset of ``demo``/``seed``; bad sizes exit 2 naming the option."""
    anchor = _parse_date("--today", today) or _utc_today()
    if drug_candidates is None:
        drug_candidates = max(companies * _DRUGS_PER_TEN_COMPANIES // 10, companies)
    try:
        return sampledata.DatasetSpec(today=anchor).with_sizes(
            companies=companies,
            drug_candidates=drug_candidates,
            signals=signals,
            weeks=weeks,
            match_targets=match_targets,
            seed=seed,
        )
    except ValueError as exc:
        # DatasetSpec names the field first ("signals must be ..."): show it as the option.
        field, _, problem = str(exc).partition(" ")
        _fail(f"--{field.replace('_', '-')} {problem}", _EXIT_USAGE)


@contextmanager
def _progress_bars(spec: sampledata.DatasetSpec) -> Iterator[sampledata.ProgressCallback]:
    totals = sampledata.phase_totals(spec)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
    )
    tasks: dict[str, TaskID] = {
        phase: progress.add_task(phase.replace("_", " "), total=total)
        for phase, total in totals.items()
    }

    def advance(phase: str, rows: int) -> None:
        progress.advance(tasks[phase], rows)

    with progress:
        yield advance


async def _wipe(db: Database) -> None:
    """Empty every table of the models (the schema and its revision stay)."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with db.session() as session:
        await session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


async def _load(db: Database, spec: sampledata.DatasetSpec) -> sampledata.LoadSummary:
    with _progress_bars(spec) as progress:
        return await sampledata.load_dataset(db, spec, progress=progress, actor=_ACTOR)


async def _seed(
    url: str | None, data_dir: Path | None, spec: sampledata.DatasetSpec, reset: bool
) -> None:
    target = await _resolve(url, data_dir)
    out = _console()
    out.print(f"seeding {target.label}")
    async with _database(target) as db:
        existing = await _count(db, Company)
        if existing and not reset:
            _fail(f"the database already holds {existing:,} companies; use --reset to replace them")
        if reset:
            await _wipe(db)
        started = time.perf_counter()
        summary = await _load(db, spec)
    out.print(_summary_line(summary, time.perf_counter() - started))


def _summary_line(summary: sampledata.LoadSummary, seconds: float) -> str:
    return (
        f"loaded {summary.companies:,} companies + {summary.acquirers} acquirers, "
        f"{summary.drug_candidates:,} drug candidates, {summary.signals:,} signals, "
        f"{summary.scores:,} scores, {summary.acquirer_matches:,} acquirer matches "
        f"in {seconds:.1f} s"
    )


async def _demo(
    url: str | None, data_dir: Path | None, spec: sampledata.DatasetSpec, reset: bool
) -> None:
    started = time.perf_counter()
    out = _console()
    target = await _resolve(url, data_dir)
    out.print(f"[bold]biotech-ma-db demo[/bold] on {target.label}")
    await asyncio.to_thread(migrations.upgrade, target.url)
    revision = await asyncio.to_thread(migrations.current, target.url)
    out.print(f"schema at revision {revision}")
    async with _database(target) as db:
        existing = await _count(db, Company)
        if existing and not reset:
            out.print(
                f"reusing the dataset already loaded ({existing:,} companies); --reset rebuilds it"
            )
        else:
            if existing:
                await _wipe(db)
            loading = time.perf_counter()
            summary = await _load(db, spec)
            out.print(_summary_line(summary, time.perf_counter() - loading))
        await _report(db, target, out)
    out.print(f"[bold]demo finished in {time.perf_counter() - started:.1f} s[/bold]")


async def _report(db: Database, target: _Target, out: Console) -> None:
    rows = await _top_targets(db, limit=10)
    if not rows:
        out.print("no scores in the database yet")
        return
    as_of = rows[0].score.score_date
    out.print()
    out.print(_targets_table(rows, f"Top 10 M&A targets on {as_of}"))
    best = await _best_acquirers(db, [row.company.id for row in rows])
    out.print()
    out.print(_acquirers_table(rows, best))
    since = dt.datetime.combine(as_of - dt.timedelta(days=90), dt.time(), tzinfo=dt.UTC)
    counts = await _signal_counts(db, since)
    table = Table(title=f"Signals in the 90 days to {as_of}", title_justify="left")
    table.add_column("Type")
    table.add_column("Signals", justify="right")
    table.add_column("High/critical", justify="right")
    for kind, total, severe in counts:
        table.add_row(kind, f"{total:,}", f"{severe:,}")
    table.add_row(
        Text("total", style="bold"),
        Text(f"{sum(c[1] for c in counts):,}", style="bold"),
        Text(f"{sum(c[2] for c in counts):,}", style="bold"),
    )
    out.print()
    out.print(table)
    out.print()
    out.print(_health_table(await db.health(), db.pool_status(), target))


@app.command()
def demo(
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Rebuild the dataset even if one is loaded.")
    ] = False,
    companies: Annotated[int, typer.Option(help="Biotech companies to generate.")] = 500,
    signals: Annotated[int, typer.Option(help="Signals over two years (COPY).")] = 100_000,
    weeks: Annotated[int, typer.Option(help="Weekly score snapshots per company.")] = 52,
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    today: TodayOption = None,
) -> None:
    """Start the embedded PostgreSQL, migrate, load a synthetic dataset and rank targets.

    A second run reuses the loaded data. With --url or DATABASE_URL it runs against that
    database instead (migrating it to head first).
    """
    spec = _spec(
        companies=companies,
        drug_candidates=None,
        signals=signals,
        weeks=weeks,
        match_targets=None,
        seed=random_seed,
        today=today,
    )
    _run(lambda: _demo(url, data_dir, spec, reset))


@app.command()
def seed(
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    companies: Annotated[int, typer.Option(help="Biotech companies (targets).")] = 500,
    drug_candidates: Annotated[
        int | None,
        typer.Option(help="Drug candidates in total.", show_default="3.2 per company"),
    ] = None,
    signals: Annotated[int, typer.Option(help="Signals, loaded with COPY.")] = 100_000,
    weeks: Annotated[int, typer.Option(help="Weekly score snapshots per company.")] = 52,
    match_targets: Annotated[int, typer.Option(help="Top targets that get acquirer matches.")] = 50,
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    today: TodayOption = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Empty every table before loading.")
    ] = False,
) -> None:
    """Load a deterministic synthetic dataset into a migrated, empty database.

    The same --seed and --today always give the same data.
    """
    spec = _spec(
        companies=companies,
        drug_candidates=drug_candidates,
        signals=signals,
        weeks=weeks,
        match_targets=match_targets,
        seed=random_seed,
        today=today,
    )
    _run(lambda: _seed(url, data_dir, spec, reset))


# --- read commands ---------------------------------------------------------------------


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
    target = await _resolve(url, data_dir)
    async with _database(target) as db:
        rows = await _top_targets(
            db,
            limit=limit,
            therapeutic_areas=areas,
            min_market_cap=min_cap,
            max_market_cap=max_cap,
            cash_constrained=cash_constrained,
        )
    if as_json:
        _print_json([_ranked_as_dict(rank, row) for rank, row in enumerate(rows, start=1)])
        return
    out = _console()
    if not rows:
        out.print("no scored company matches (load data with `biotech-ma-db seed` or `demo`)")
        return
    out.print(_targets_table(rows, f"Top {len(rows)} M&A targets on {rows[0].score.score_date}"))


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
        _fail(f"--limit must be at least 1 (got {limit})", _EXIT_USAGE)
    areas = [area.strip().lower().replace(" ", "_") for area in therapeutic_area or []]
    min_cap = _parse_amount("--min-market-cap", min_market_cap)
    max_cap = _parse_amount("--max-market-cap", max_market_cap)
    if min_cap is not None and max_cap is not None and min_cap > max_cap:
        _fail("--min-market-cap is larger than --max-market-cap", _EXIT_USAGE)
    _run(
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
        company = await uow.companies.get_by_ticker(ticker)
        if company is None:
            _fail(f"no company with ticker {ticker!r}")
        drugs = await uow.drug_candidates.get_by_company(company.id)
        signals = (
            await uow.signals.get_by_company(company.id, limit=signal_count) if signal_count else []
        )
        # The newest snapshots whatever their age: get_history() counts days from today,
        # and a dataset seeded with --today may lie in the past.
        scores = (
            await uow.session.scalars(
                select(MAScore)
                .where(MAScore.company_id == company.id)
                .order_by(MAScore.score_date.desc())
                .limit(_SCORE_HISTORY)
            )
        ).all()
        matches = await uow.acquirer_matches.get_top_matches_for_target(company.id, limit=10)
        return _Profile(
            company,
            drugs,
            signals,
            list(reversed(scores)),
            [(match, match.acquirer_company) for match in matches],
        )


def _phase_order(drug: DrugCandidate) -> int:
    order = ["approved", "nda_bla_submitted", "phase_3", "phase_2", "phase_1", "preclinical"]
    phase = str(drug.phase)
    return order.index(phase) if phase in order else len(order)


def _profile_as_dict(profile: _Profile) -> dict[str, object]:
    company = profile.company
    return {
        "ticker": company.ticker,
        "name": company.name,
        "exchange": company.exchange,
        "headquarters_country": company.headquarters_country,
        "founded_year": company.founded_year,
        "employee_count": company.employee_count,
        "market_cap_usd": company.market_cap_usd,
        "cash_position_usd": company.cash_position_usd,
        "quarterly_burn_usd": company.quarterly_burn_usd,
        "total_debt_usd": company.total_debt_usd,
        "revenue_ttm_usd": company.revenue_ttm_usd,
        "cash_runway_months": company.cash_runway_months,
        "cash_constrained": company.cash_constrained,
        "therapeutic_areas": list(company.therapeutic_areas),
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


def _print_profile(profile: _Profile, out: Console) -> None:
    company = profile.company
    facts = Table(
        title=f"{company.ticker} — {company.name}", title_justify="left", show_header=False
    )
    facts.add_column("key", style="bold")
    facts.add_column("value")
    facts.add_row("exchange", f"{company.exchange or '—'} · {company.headquarters_country or '—'}")
    facts.add_row(
        "founded / staff", f"{company.founded_year or '—'} / {company.employee_count or '—'}"
    )
    facts.add_row("market cap", _money(company.market_cap_usd))
    facts.add_row(
        "cash / quarterly burn",
        f"{_money(company.cash_position_usd)} / {_money(company.quarterly_burn_usd)}",
    )
    facts.add_row("runway", _runway(company))
    facts.add_row(
        "debt / revenue (TTM)",
        f"{_money(company.total_debt_usd)} / {_money(company.revenue_ttm_usd)}",
    )
    facts.add_row("therapeutic areas", ", ".join(company.therapeutic_areas) or "—")
    if profile.scores:
        latest = profile.scores[-1]
        history = sparkline([s.total_score for s in profile.scores])
        facts.add_row(
            "M&A score",
            f"{float(latest.total_score):.1f} on {latest.score_date} "
            f"(percentile {_percentile(latest.percentile_rank)})",
        )
        facts.add_row(f"last {len(profile.scores)} scores", history)
        facts.add_row("key drivers", "; ".join(latest.key_drivers) or "—")
        facts.add_row("risk factors", "; ".join(latest.risk_factors) or "—")
    out.print(facts)

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
            _money(drug.peak_sales_estimate_usd),
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
                f"{_money(match.estimated_value_low_usd)}–{_money(match.estimated_value_high_usd)}",
                match.synergy_rationale or "—",
            )
        out.print()
        out.print(buyers)


async def _company(
    url: str | None, data_dir: Path | None, ticker: str, signal_count: int, as_json: bool
) -> None:
    target = await _resolve(url, data_dir)
    async with _database(target) as db:
        profile = await _company_profile(db, ticker, signal_count)
    if as_json:
        _print_json(_profile_as_dict(profile))
    else:
        _print_profile(profile, _console())


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
        _fail(f"--signals must be between 0 and {_MAX_SIGNALS} (got {signal_count})", _EXIT_USAGE)
    _run(lambda: _company(url, data_dir, ticker.strip().upper(), signal_count, as_json))


async def _health(url: str | None, data_dir: Path | None, as_json: bool) -> None:
    target = await _resolve(url, data_dir)
    async with _database(target) as db:
        report = await db.health()
        pool = db.pool_status()
    if as_json:
        _print_json({**dataclasses.asdict(report), "pool": dataclasses.asdict(pool)})
    else:
        _console().print(_health_table(report, pool, target))
    if not report.ok:
        _fail(f"{target.label} is not healthy: {report.error or 'no answer'}")


@app.command()
def health(
    url: UrlOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Probe the database: round-trip latency, server version, replica or not.

    Exits 1 when the database does not answer.
    """
    _run(lambda: _health(url, data_dir, as_json))


async def _pool_status(url: str | None, data_dir: Path | None, as_json: bool) -> None:
    target = await _resolve(url, data_dir)
    async with _database(target) as db:
        async with db.session() as session:
            # One round trip, so the pool has opened (and returned) a connection.
            await session.execute(text("SELECT 1"))
        status = db.pool_status()
    if as_json:
        _print_json(dataclasses.asdict(status))
        return
    table = Table(title="Connection pool", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", justify="right")
    for key, value in dataclasses.asdict(status).items():
        table.add_row(
            key.replace("_", " "), f"{value:g}" if isinstance(value, float) else str(value)
        )
    _console().print(table)


@app.command("pool-status")
def pool_status(
    url: UrlOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Size, checked-in/out connections and overflow of the connection pool."""
    _run(lambda: _pool_status(url, data_dir, as_json))


async def _check_schema(url: str | None, data_dir: Path | None) -> list[str]:
    target = await _resolve(url, data_dir)
    return await asyncio.to_thread(migrations.check_schema, target.url)


@app.command("check-schema")
def check_schema(url: UrlOption = None, data_dir: DataDirOption = None) -> None:
    """Compare the live schema with the models; exit 1 and list the differences if any."""
    differences = _run(lambda: _check_schema(url, data_dir))
    if differences:
        for line in differences:
            typer.echo(f"- {line}")
        _fail(f"schema drift: {len(differences)} difference(s)")
    typer.echo("schema matches the models")


# --- migrate ---------------------------------------------------------------------------


async def _migrate(url: str | None, data_dir: Path | None, action: str, revision: str) -> str:
    target = await _resolve(url, data_dir)
    # An explicit URL gets the TLS options of the settings (DB_SSL_MODE, DB_SSL_ROOT_CERT).
    ssl_option = DatabaseSettings().ssl_context() if target.server is None else None
    tls = {"ssl": ssl_option} if ssl_option is not None else None
    if action == "upgrade":
        await asyncio.to_thread(lambda: migrations.upgrade(target.url, revision, connect_args=tls))
    elif action == "downgrade":
        await asyncio.to_thread(
            lambda: migrations.downgrade(target.url, revision, connect_args=tls)
        )
    current = await asyncio.to_thread(lambda: migrations.current(target.url, connect_args=tls))
    return current or "base (no schema)"


@migrate_app.command("upgrade")
def migrate_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    typer.echo(f"at revision {_run(lambda: _migrate(url, data_dir, 'upgrade', revision))}")


@migrate_app.command("downgrade")
def migrate_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' removes all.")],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Downgrade the schema to REVISION ('base' drops every table)."""
    typer.echo(f"at revision {_run(lambda: _migrate(url, data_dir, 'downgrade', revision))}")


@migrate_app.command("current")
def migrate_current(url: UrlOption = None, data_dir: DataDirOption = None) -> None:
    """Print the revision the database is at."""
    typer.echo(_run(lambda: _migrate(url, data_dir, "current", "")))


async def _history() -> list[tuple[str, str]]:
    return migrations.history()


@migrate_app.command("history")
def migrate_history() -> None:
    """List the migration revisions, oldest first (no database needed)."""
    revisions = _run(_history)
    head = set(migrations.heads())
    table = Table(title="Migrations", title_justify="left")
    table.add_column("Revision", style="bold cyan")
    table.add_column("Description")
    for revision, description in revisions:
        table.add_row(revision + (" (head)" if revision in head else ""), description)
    _console().print(table)


# --- roles -----------------------------------------------------------------------------

_PASSWORD_ENV = {role: f"{role.upper()}_PASSWORD" for role in roles.LOGIN_ROLES}


async def _provision(
    admin_url: str | None,
    data_dir: Path | None,
    database: str | None,
    schema: str,
    adopt_existing: bool,
    passwords: dict[str, str],
) -> tuple[roles.ProvisionReport, str]:
    explicit = _configured_url(admin_url) if admin_url and admin_url.strip() else None
    if explicit is not None:
        target = _Target(explicit)
    else:  # never DATABASE_URL: that is the application's role, not an admin
        server = await asyncio.to_thread(embedded.start, data_dir)
        await _ensure_database(server, DATABASE_NAME)
        target = _Target(server.url(DATABASE_NAME), server)
    name = database or make_url(target.url).database or DATABASE_NAME
    ssl_option = DatabaseSettings().ssl_context() if target.server is None else None
    report = await asyncio.to_thread(
        roles.provision_roles,
        target.url,
        database=name,
        schema=schema,
        passwords=passwords,
        adopt_existing=adopt_existing,
        ssl_context=ssl_option,
    )
    return report, target.label


@app.command("provision-roles")
def provision_roles(
    admin_url: Annotated[
        str | None,
        typer.Option(
            "--admin-url",
            envvar="BIOTECH_MA_DB_ADMIN_URL",
            help="URL of a superuser (or CREATEROLE owner of the database). "
            "Default: the embedded server.",
            show_default=False,
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(help="Database to grant on.", show_default="the admin URL's database"),
    ] = None,
    schema: Annotated[str, typer.Option(help="Schema the migrations create objects in.")] = (
        "public"
    ),
    adopt_existing: Annotated[
        bool,
        typer.Option(
            "--adopt-existing",
            help="Give app_owner the objects an earlier migration created as another role.",
        ),
    ] = False,
    prompt_passwords: Annotated[
        bool,
        typer.Option(
            "--prompt-passwords", help="Ask for each login role's password (input hidden)."
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Create or repair the roles app_owner, app_migrator, app_rw, app_ro, app_worker.

    Idempotent: safe to run on every deploy and on every database of a cluster.  Passwords
    are read from APP_MIGRATOR_PASSWORD, APP_RW_PASSWORD, APP_RO_PASSWORD and
    APP_WORKER_PASSWORD (or prompted for with --prompt-passwords; never from the command
    line) and sent to the server as SCRAM verifiers; roles without one keep theirs.
    """
    passwords = {
        role: os.environ[variable]
        for role, variable in _PASSWORD_ENV.items()
        if os.environ.get(variable)
    }
    if prompt_passwords:
        for role in roles.LOGIN_ROLES:
            if role not in passwords:
                entered = typer.prompt(
                    f"password for {role} (empty: leave unchanged)",
                    default="",
                    hide_input=True,
                    show_default=False,
                )
                if entered:
                    passwords[role] = entered
    report, label = _run(
        lambda: _provision(admin_url, data_dir, database, schema, adopt_existing, passwords)
    )
    typer.echo(f"roles on {label}:")
    typer.echo(f"  created: {', '.join(report.created) or 'none'}")
    typer.echo(f"  already there (attributes re-applied): {', '.join(report.existing) or 'none'}")
    typer.echo(f"  passwords set: {', '.join(report.passwords_set) or 'none'}")
    adopted = f", {report.adopted} object(s) adopted" if report.adopted else ""
    typer.echo(
        f"database {report.database}, schema {report.schema}: grants and default privileges "
        f"applied{adopted}"
    )
    typer.echo(
        "next: migrate as app_migrator (MIGRATION_DATABASE_URL), run the application as "
        "app_rw / app_ro and the delivery worker as app_worker"
    )


# --- embedded --------------------------------------------------------------------------


async def _embedded_start(data_dir: Path | None) -> embedded.EmbeddedServer:
    server = await asyncio.to_thread(embedded.start, data_dir)
    await _ensure_database(server, DATABASE_NAME)
    return server


@embedded_app.command("start")
def embedded_start(data_dir: DataDirOption = None) -> None:
    """Start the embedded PostgreSQL (initialised on first use) and create its database."""
    server = _run(lambda: _embedded_start(data_dir))
    typer.echo(f"embedded PostgreSQL running (pid {server.pid}) in {server.data_dir}")
    typer.echo(server.url(DATABASE_NAME))


async def _embedded_stop(data_dir: Path | None) -> bool:
    return await asyncio.to_thread(embedded.stop, data_dir)


@embedded_app.command("stop")
def embedded_stop(data_dir: DataDirOption = None) -> None:
    """Stop the embedded PostgreSQL (its data stays in the data folder)."""
    folder = data_dir or embedded.default_data_dir()
    if _run(lambda: _embedded_stop(data_dir)):
        typer.echo(f"embedded PostgreSQL stopped ({folder})")
    else:
        typer.echo(f"embedded PostgreSQL was not running ({folder})")


async def _embedded_status(data_dir: Path | None) -> embedded.EmbeddedServer | None:
    return embedded.status(data_dir)


@embedded_app.command("status")
def embedded_status(data_dir: DataDirOption = None) -> None:
    """Whether the embedded PostgreSQL runs; exits 1 when it does not."""
    server = _run(lambda: _embedded_status(data_dir))
    if server is None:
        typer.echo(
            f"embedded PostgreSQL is not running ({data_dir or embedded.default_data_dir()})"
        )
        raise typer.Exit(_EXIT_FAILURE)
    typer.echo(
        f"embedded PostgreSQL running (pid {server.pid}) in {server.data_dir}, "
        f"socket {server.socket_dir}/.s.PGSQL.{server.port}"
    )


@embedded_app.command("url")
def embedded_url(data_dir: DataDirOption = None) -> None:
    """Print the URL of the running embedded server's database (for DATABASE_URL)."""
    server = _run(lambda: _embedded_status(data_dir))
    if server is None:
        _fail(
            "the embedded PostgreSQL is not running: start it with `biotech-ma-db embedded start`"
        )
    typer.echo(server.url(DATABASE_NAME))


def main() -> None:
    """Entry point of the ``biotech-ma-db`` console script."""
    app()


if __name__ == "__main__":
    main()
