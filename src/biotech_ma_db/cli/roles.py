"""``provision-roles``: create or repair the least-privilege roles of a database.

Like every command that connects, it takes ``--url``; here that is the admin connection
(a superuser, or a ``CREATEROLE`` role that owns the database), also read from
``BIOTECH_MA_DB_ADMIN_URL`` and never from ``DATABASE_URL``, which holds the
application's role.  ``--admin-url``, the option's former name, still works (hidden,
with a warning).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from biotech_ma_db import roles
from biotech_ma_db.cli._app import app
from biotech_ma_db.cli._common import EXIT_USAGE, DataDirOption, fail, run
from biotech_ma_db.cli._target import DATABASE_NAME, Target, checked_url, embedded_target
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["ADMIN_URL_ENV", "provision_roles"]

ADMIN_URL_ENV = "BIOTECH_MA_DB_ADMIN_URL"
"""The environment variable ``provision-roles --url`` falls back to."""

_PASSWORD_ENV = {role: f"{role.upper()}_PASSWORD" for role in roles.LOGIN_ROLES}


def _admin_url(url: str | None, deprecated: str | None) -> str | None:
    """``--url``, else the deprecated ``--admin-url``, else ``BIOTECH_MA_DB_ADMIN_URL``.

    The variable is read here rather than by Typer so that an explicit ``--admin-url``
    can still win over it while a clash of the two options is refused.
    """
    given = (url or "").strip()
    alias = (deprecated or "").strip()
    if alias:
        typer.echo("warning: --admin-url is deprecated; use --url", err=True)
        if given and given != alias:
            fail("--admin-url is the old name of --url: give only --url", EXIT_USAGE)
        return checked_url(alias, "--admin-url")
    if given:
        return checked_url(given, "--url")
    from_env = os.environ.get(ADMIN_URL_ENV, "").strip()
    return checked_url(from_env, ADMIN_URL_ENV) if from_env else None


async def _provision(
    admin_url: str | None,
    data_dir: Path | None,
    database: str | None,
    schema: str,
    adopt_existing: bool,
    passwords: dict[str, str],
) -> tuple[roles.ProvisionReport, str]:
    target = Target(admin_url) if admin_url is not None else await embedded_target(data_dir)
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


def _passwords(prompt: bool) -> dict[str, str]:
    """The login roles' passwords from ``*_PASSWORD``, then (``prompt``) from the terminal."""
    passwords = {
        role: os.environ[variable]
        for role, variable in _PASSWORD_ENV.items()
        if os.environ.get(variable)
    }
    if prompt:
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
    return passwords


def _print_report(report: roles.ProvisionReport, label: str) -> None:
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


@app.command("provision-roles")
def provision_roles(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Admin connection URL: a superuser, or a CREATEROLE role that owns the "
            f"database. Also read from {ADMIN_URL_ENV}, never from DATABASE_URL (the "
            "application's role). Default: the embedded server.",
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
    deprecated_admin_url: Annotated[
        str | None,
        typer.Option("--admin-url", hidden=True, help="Deprecated: the old name of --url."),
    ] = None,
) -> None:
    """Create or repair the roles app_owner, app_migrator, app_rw, app_ro, app_worker.

    Idempotent: safe to run on every deploy and on every database of a cluster.  Passwords
    are read from APP_MIGRATOR_PASSWORD, APP_RW_PASSWORD, APP_RO_PASSWORD and
    APP_WORKER_PASSWORD (or prompted for with --prompt-passwords; never from the command
    line) and sent to the server as SCRAM verifiers; roles without one keep theirs.
    """
    admin_url = _admin_url(url, deprecated_admin_url)
    passwords = _passwords(prompt_passwords)
    report, label = run(
        lambda: _provision(admin_url, data_dir, database, schema, adopt_existing, passwords)
    )
    _print_report(report, label)
