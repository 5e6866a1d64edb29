"""``demo`` and ``seed``: generate the synthetic dataset, load it, and (demo) report on it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

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
from sqlalchemy import text

from biotech_ma_db import migrations, sampledata
from biotech_ma_db.cli._app import app
from biotech_ma_db.cli._common import (
    EXIT_USAGE,
    DataDirOption,
    TodayOption,
    UrlOption,
    console,
    fail,
    parse_date,
    run,
    utc_today,
)
from biotech_ma_db.cli._reads import best_acquirers, count_rows, signal_counts, top_targets
from biotech_ma_db.cli._render import acquirers_table, health_table, targets_table
from biotech_ma_db.cli._target import Target, open_database, resolve
from biotech_ma_db.database import ConsistencyToken, Database
from biotech_ma_db.engine import PRIMARY_ONLY
from biotech_ma_db.models import Base, Company

__all__ = ["demo", "seed"]

_ACTOR = "biotech-ma-db cli"
_DRUGS_PER_TEN_COMPANIES = 32


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
    anchor = parse_date("--today", today) or utc_today()
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
        fail(f"--{field.replace('_', '-')} {problem}", EXIT_USAGE)


@contextmanager
def _progress_bars(spec: sampledata.DatasetSpec) -> Iterator[sampledata.ProgressCallback]:
    totals = sampledata.phase_totals(spec)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
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


def _summary_line(summary: sampledata.LoadSummary, seconds: float) -> str:
    return (
        f"loaded {summary.companies:,} companies + {summary.acquirers} acquirers, "
        f"{summary.drug_candidates:,} drug candidates, {summary.signals:,} signals, "
        f"{summary.scores:,} scores, {summary.acquirer_matches:,} acquirer matches "
        f"in {seconds:.1f} s"
    )


async def _seed(
    url: str | None, data_dir: Path | None, spec: sampledata.DatasetSpec, reset: bool
) -> None:
    target = await resolve(url, data_dir)
    out = console()
    out.print(f"seeding {target.label}")
    async with open_database(target) as db:
        # Decides whether to write: read on the primary, never a lagging replica.
        existing = await count_rows(db, Company, consistency=PRIMARY_ONLY)
        if existing and not reset:
            fail(f"the database already holds {existing:,} companies; use --reset to replace them")
        if reset:
            await _wipe(db)
        started = time.perf_counter()
        summary = await _load(db, spec)
    out.print(_summary_line(summary, time.perf_counter() - started))


async def _demo(
    url: str | None, data_dir: Path | None, spec: sampledata.DatasetSpec, reset: bool
) -> None:
    started = time.perf_counter()
    out = console()
    target = await resolve(url, data_dir)
    out.print(f"[bold]biotech-ma-db demo[/bold] on {target.label}")
    await asyncio.to_thread(migrations.upgrade, target.url)
    revision = await asyncio.to_thread(migrations.current, target.url)
    out.print(f"schema at revision {revision}")
    async with open_database(target) as db:
        existing = await count_rows(db, Company, consistency=PRIMARY_ONLY)
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
        # The report may run on a replica, once it has replayed the load.
        await _report(db, target, out, await db.consistency_token())
    out.print(f"[bold]demo finished in {time.perf_counter() - started:.1f} s[/bold]")


async def _report(
    db: Database, target: Target, out: Console, consistency: ConsistencyToken
) -> None:
    rows = await top_targets(db, limit=10, consistency=consistency)
    if not rows:
        out.print("no scores in the database yet")
        return
    as_of = rows[0].score.score_date
    out.print()
    out.print(targets_table(rows, f"Top 10 M&A targets on {as_of}"))
    best = await best_acquirers(db, [row.company.id for row in rows], consistency=consistency)
    out.print()
    out.print(acquirers_table(rows, best))
    since = dt.datetime.combine(as_of - dt.timedelta(days=90), dt.time(), tzinfo=dt.UTC)
    counts = await signal_counts(db, since, consistency=consistency)
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
    out.print(health_table(await db.health(), db.pool_status(), target))


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
    run(lambda: _demo(url, data_dir, spec, reset))


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
    run(lambda: _seed(url, data_dir, spec, reset))
