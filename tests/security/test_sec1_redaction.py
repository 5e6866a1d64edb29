"""T-SEC-1: passwords, peppers, keys and webhook secrets appear in no repr, log or error.

One test provokes every path the RELIABILITY plan lists (a connection failure, bad DSN
validation, an integrity error with ``echo=True``, logging the settings object), plus the
CLI, role provisioning and the webhook helpers, collects every string a user or a log
could see (reprs, ``str(exc)``, full tracebacks with their causes, log records, captured
stdout/stderr, CLI output) and counts occurrences of each secret.  A second test does the
same for OpenTelemetry spans (``biotech_ma_db.tracing``): every span, attribute, event and
status exported while units of work write and read secrets and fail on them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import traceback
from urllib.parse import quote

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from biotech_ma_db import (
    ApiKey,
    Database,
    DatabaseError,
    DatabaseSettings,
    SettingsError,
)
from biotech_ma_db.cli import app
from biotech_ma_db.repositories.api_key import API_KEY_PREFIX, hash_api_key
from biotech_ma_db.roles import RoleProvisioningError, provision_roles
from biotech_ma_db.security import (
    SecretCipher,
    SecretDecryptionError,
    generate_encryption_key,
)
from biotech_ma_db.tracing import UNIT_SPAN_NAME, instrument, uninstrument
from biotech_ma_db.webhook_signing import WebhookVerificationError, verify_signature

from .conftest import Figure, Secured, new_tenant

PASSWORD = "p%@ss:w/rd-Sec1"
ENCODED = quote(PASSWORD, safe="")
logger = logging.getLogger("biotech_ma_db.tests.redaction")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Captured:
    def __init__(self) -> None:
        self.strings: list[str] = []

    def add(self, *values: object) -> None:
        self.strings.extend(str(value) for value in values)

    def error(self, exc: BaseException) -> None:
        self.add(str(exc), repr(exc), "".join(traceback.format_exception(exc)))


class TestRedaction:
    """0 occurrences of any secret across everything captured."""

    async def test_no_secret_anywhere(
        self,
        secured: Secured,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
        figure: Figure,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        pepper = "pepper-" + secrets.token_hex(16)
        key_material = generate_encryption_key()
        keyish = API_KEY_PREFIX + secrets.token_urlsafe(32)
        seen = _Captured()
        port = _closed_port()
        remote = f"postgresql://app:{ENCODED}@127.0.0.1:{port}/biotech"

        # 1. Settings from the environment, printed and logged every way.
        for name in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "DB_READ_REPLICA_URLS"):
            monkeypatch.setenv(name, remote)
        monkeypatch.setenv("POSTGRES_PASSWORD", PASSWORD)
        monkeypatch.setenv("DB_API_KEY_PEPPER", pepper)
        monkeypatch.setenv("DB_WEBHOOK_ENCRYPTION_KEYS", f"9:{key_material}")
        monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "2")
        settings = DatabaseSettings()
        seen.add(
            repr(settings),
            str(settings),
            settings.model_dump(),
            settings.model_dump_json(),
            repr(settings.url()),
            settings.url(),
            repr(settings.migration_url()),
            settings.replica_urls(),
        )
        logger.info("settings %s / %r", settings, settings)
        logger.warning("connecting to %s", settings.url())

        # 2. The objects built from them.
        db = Database(settings)
        seen.add(repr(db), repr(db.engine), db.engine.url, repr(db.security))
        seen.add(repr(db.security.cipher()), repr(db.unit_of_work()))

        # 3. A connection failure, through health() and through a unit of work.
        report = await db.health()
        seen.add(report, report.error)
        with pytest.raises(DatabaseError) as unavailable:
            async with db.unit_of_work() as uow:
                await uow.companies.count()
        seen.error(unavailable.value)
        await db.dispose()

        # 4. Bad DSNs and bad values next to a DSN.
        for variable, value in (
            ("DATABASE_URL", f"mysql://u:{ENCODED}@h/db"),
            ("DATABASE_URL", f"postgresql://u:{ENCODED}@h:notaport/db"),
            ("DB_POOL_SIZE", "lots"),
            ("DB_WEBHOOK_ENCRYPTION_KEYS", f"9:{key_material[:-3]}"),
            ("DB_WEBHOOK_ENCRYPTION_KEYS", f"x{key_material}"),
        ):
            monkeypatch.setenv(variable, value)
            with pytest.raises(SettingsError) as bad:
                DatabaseSettings().url()
            seen.error(bad.value)
            monkeypatch.setenv("DATABASE_URL", remote)
            monkeypatch.setenv("DB_POOL_SIZE", "5")
            monkeypatch.setenv("DB_WEBHOOK_ENCRYPTION_KEYS", f"9:{key_material}")
        for name in (
            "DATABASE_URL",
            "MIGRATION_DATABASE_URL",
            "DB_READ_REPLICA_URLS",
            "POSTGRES_PASSWORD",
            "DB_POOL_SIZE",
            "DB_CONNECT_TIMEOUT_S",
        ):
            monkeypatch.delenv(name)

        # 5. Integrity and encoding errors with echo=True, as app_rw.
        echo = Database.from_url(
            secured.url("app_rw"),
            echo=True,
            api_key_pepper=pepper,
            webhook_encryption_keys=f"9:{key_material}",
            pool_size=1,
            max_overflow=0,
        )
        try:
            tenant = await new_tenant(echo, "Redacted")
            async with echo.unit_of_work(client_id=tenant.client_id) as uow:
                hook = await uow.webhooks.create(
                    client_id=tenant.client_id, url="https://hooks.example.com/r"
                )
                webhook_secret = hook.secret
                await uow.commit()
            with pytest.raises(DatabaseError) as duplicate:
                async with echo.unit_of_work(client_id=tenant.client_id) as uow:
                    for _ in range(2):
                        uow.session.add(
                            ApiKey(
                                client_id=tenant.client_id,
                                key_prefix=keyish,
                                key_hash=hash_api_key(keyish + secrets.token_hex(2), pepper),
                            )
                        )
                    await uow.session.flush()
            seen.error(duplicate.value)
            with pytest.raises(DatabaseError) as encoding:
                async with echo.unit_of_work() as uow:
                    await uow.session.execute(text("SELECT CAST(:v AS bigint)"), {"v": keyish})
            seen.error(encoding.value)
            async with echo.unit_of_work() as uow:
                assert await uow.clients.authenticate(tenant.api_key) is not None
        finally:
            await echo.dispose()

        # 6. Role provisioning that fails (server down; and a role without the power).
        for admin in (
            f"postgresql://postgres:{ENCODED}@127.0.0.1:{port}/postgres",
            secured.url("app_rw"),
        ):
            with pytest.raises(RoleProvisioningError) as refused:
                provision_roles(admin, database=secured.name, passwords={"app_rw": PASSWORD})
            seen.error(refused.value)

        # 7. Webhook helpers: verification and decryption failures.
        with pytest.raises(WebhookVerificationError) as unsigned:
            verify_signature(
                webhook_secret,
                msg_id="evt",
                timestamp="1",
                signature=f"v1,{webhook_secret}",
                body=b"{}",
                now=1,
            )
        seen.error(unsigned.value)
        with pytest.raises(SecretDecryptionError) as sealed:
            SecretCipher({1: b"k" * 32}).decrypt(webhook_secret, 1)
        seen.error(sealed.value)

        # 8. The command line.
        runner = CliRunner()
        for args, env in (
            (["health", "--url", remote], {}),
            (["pool-status"], {"DATABASE_URL": remote}),
            (
                ["provision-roles", "--admin-url", remote, "--database", "x"],
                {"APP_RW_PASSWORD": PASSWORD},
            ),
            (["migrate", "current", "--url", remote], {}),
        ):
            # The CLI runs its own event loop: keep it off this test's loop.
            result = await asyncio.to_thread(runner.invoke, app, args, env=env)
            assert result.exit_code != 0
            seen.add(result.output)

        out, err = capsys.readouterr()
        seen.add(out, err, caplog.text)
        seen.add(*(record.getMessage() for record in caplog.records))
        needles = {
            "password": PASSWORD,
            "encoded password": ENCODED,
            "pepper": pepper,
            "encryption key": key_material,
            "api key": tenant.api_key,
            "key-shaped parameter": keyish,
            "webhook secret": webhook_secret,
        }
        hits = {name: sum(needle in s for s in seen.strings) for name, needle in needles.items()}
        assert "SQL parameters hidden" in "\n".join(seen.strings)  # echo=True was on
        assert hits == dict.fromkeys(needles, 0)
        figure(
            f"0 occurrences of {len(needles)} secrets in {len(seen.strings)} captured strings "
            "(reprs, dumps, errors with tracebacks, logs with echo=True, CLI output)"
        )


class TestSpanRedaction:
    """0 occurrences of any secret in the spans of units of work that handle secrets."""

    async def test_no_secret_in_any_span(self, secured: Secured, figure: Figure) -> None:
        pepper = "pepper-" + secrets.token_hex(16)
        key_material = generate_encryption_key()
        keyish = API_KEY_PREFIX + secrets.token_urlsafe(32)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        # The test server trusts local users, so the password in the URL is never checked:
        # it is only there to be kept out of the spans.
        url = make_url(secured.url("app_rw")).set(password=PASSWORD)
        db = Database.from_url(
            url,
            api_key_pepper=pepper,
            webhook_encryption_keys=f"9:{key_material}",
            pool_size=1,
            max_overflow=0,
        )
        down = Database.from_url(
            f"postgresql://app:{ENCODED}@127.0.0.1:{_closed_port()}/biotech",
            connect_timeout_s=2,
        )
        instrument(db, tracer_provider=provider)
        instrument(down, tracer_provider=provider)
        try:
            tenant = await new_tenant(db, "Spans")
            async with db.unit_of_work(client_id=tenant.client_id) as uow:
                hook = await uow.webhooks.create(
                    client_id=tenant.client_id, url="https://hooks.example.com/s"
                )
                webhook_secret = hook.secret
                await uow.companies.create(ticker="SPAN", name=keyish)  # a written value
                # Sent, then rolled back: the shared secured database keeps no such row.
                await uow.session.flush()
            async with db.unit_of_work(client_id=tenant.client_id) as uow:
                assert await uow.clients.authenticate(tenant.api_key) is not None
                assert await uow.companies.get_by_ticker(keyish) is None  # a fast read
                await uow.companies.search(therapeutic_areas=[keyish], query=keyish)
            with pytest.raises(DatabaseError):  # the driver quotes the value it refused
                async with db.unit_of_work() as uow:
                    await uow.session.execute(text("SELECT CAST(:v AS bigint)"), {"v": keyish})
            with pytest.raises(DatabaseError):  # and so does the server (22P02)
                async with db.unit_of_work() as uow:
                    await uow.session.execute(
                        text("SELECT CAST(CAST(:v AS text) AS bigint)"), {"v": keyish}
                    )
            with pytest.raises(DatabaseError):  # DETAIL would quote the duplicate key
                async with db.unit_of_work(client_id=tenant.client_id) as uow:
                    for _ in range(2):
                        uow.session.add(
                            ApiKey(
                                client_id=tenant.client_id,
                                key_prefix=keyish,
                                key_hash=hash_api_key(keyish + secrets.token_hex(2), pepper),
                            )
                        )
                    await uow.session.flush()
            with pytest.raises(DatabaseError):  # no server behind the password-bearing URL
                async with down.unit_of_work() as uow:
                    await uow.companies.count()
        finally:
            uninstrument(db)
            uninstrument(down)
            await db.dispose()
            await down.dispose()

        spans = exporter.get_finished_spans()
        dumps = [span.to_json() for span in spans]
        needles = {
            "password": PASSWORD,
            "encoded password": ENCODED,
            "pepper": pepper,
            "encryption key": key_material,
            "api key": tenant.api_key,
            "key-shaped value": keyish,
            "webhook secret": webhook_secret,
        }
        hits = {name: sum(needle in dump for dump in dumps) for name, needle in needles.items()}
        units = [span for span in spans if span.name == UNIT_SPAN_NAME]
        failed = [span for span in spans if span.status.status_code is StatusCode.ERROR]
        # The spans are there to be searched: every unit, its statements, its failures.
        assert len(units) == 7
        assert sum(1 for span in units if span.status.status_code is StatusCode.ERROR) == 4
        assert any("SQLSTATE 22P02" in str(span.status.description) for span in failed)
        assert any("SQLSTATE 23505" in str(span.status.description) for span in failed)
        assert len(spans) - len(units) >= 10
        assert hits == dict.fromkeys(needles, 0)
        figure(
            f"0 occurrences of {len(needles)} secrets in {len(spans)} exported spans "
            f"({len(units)} units of work, {len(failed)} failed spans with their events)"
        )
