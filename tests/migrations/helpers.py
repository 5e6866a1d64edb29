"""Helpers shared by the migration tests: subprocesses without the caller's database config."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 120
CONFIG_VARIABLES = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "DB_MIGRATION_LOCK_WAIT_SECONDS",
)


def clean_env(**variables: str) -> dict[str, str]:
    """The environment for a subprocess: ours, minus any database config, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(variables)
    return env


async def run_process(env: dict[str, str], *argv: str) -> tuple[int, str]:
    """Run ``argv`` from the repository root; its exit code and output (stderr merged)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), SUBPROCESS_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def run_alembic_stdout(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``python -m alembic ARGS``: exit code, stdout and stderr apart (``--sql`` output)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), SUBPROCESS_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode(errors="replace")


async def run_alembic(env: dict[str, str], *args: str) -> tuple[int, str]:
    """``python -m alembic ARGS`` with the repository's ``alembic.ini``."""
    return await run_process(env, sys.executable, "-m", "alembic", *args)


async def scalars(url: str | URL, sql: str, **params: object) -> list[object]:
    """The first column of ``sql``'s rows, on a connection of its own."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).scalars())
    finally:
        await engine.dispose()
