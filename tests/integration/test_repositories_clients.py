"""``ClientRepository``, ``AlertRepository`` and ``ReportRepository``."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    AlertRepository,
    Client,
    ClientRepository,
    CompanyRepository,
    NotFoundError,
    ReportRepository,
    ReportStatus,
    ValidationError,
)
from biotech_ma_db.repositories import hash_api_key
from biotech_ma_db.testing.factories import (
    make_alert,
    make_client,
    make_company,
    make_report,
    make_signal,
)


class TestApiKeys:
    """Keys are returned once, stored as digests, and checked in constant time."""

    async def test_create_and_authenticate(self, db_session: AsyncSession) -> None:
        repo = ClientRepository(db_session, pepper=b"test-pepper")
        client, key = await repo.create_with_api_key("Acme", scopes=["read", "write"])
        assert key.startswith("bmap_live_")
        assert len(key) > 40
        assert client.api_key_prefix == key[:18]
        assert client.scopes == ["read", "write"]
        assert await repo.authenticate(key) is client
        stored = await db_session.scalar(
            text("SELECT api_key_hash FROM clients WHERE id = :id"), {"id": client.id}
        )
        assert stored == hash_api_key(key, b"test-pepper")
        row = await db_session.execute(
            text("SELECT * FROM clients WHERE id = :id"), {"id": client.id}
        )
        assert all(key not in str(value) for value in row.one())

    async def test_wrong_keys(self, db_session: AsyncSession) -> None:
        repo = ClientRepository(db_session, pepper=b"test-pepper")
        client, key = await repo.create_with_api_key("Acme")
        assert await repo.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert await repo.authenticate("") is None
        assert await repo.authenticate("not-a-key") is None
        assert await repo.authenticate(key + "\x00") is None
        assert await repo.authenticate(None) is None  # type: ignore[arg-type]
        assert await ClientRepository(db_session, pepper=b"other").authenticate(key) is None
        await repo.update(client.id, is_active=False)
        assert await repo.authenticate(key) is None

    async def test_deleted_client_cannot_authenticate(self, db_session: AsyncSession) -> None:
        repo = ClientRepository(db_session)
        client, key = await repo.create_with_api_key("Gone")
        await repo.delete(client.id)
        assert await repo.authenticate(key) is None

    async def test_listings_never_carry_the_digest(self, db_session: AsyncSession) -> None:
        repo = ClientRepository(db_session)
        client, _ = await repo.create_with_api_key("Listed")
        db_session.expunge_all()
        (listed,) = await repo.list(Client.id == client.id)
        assert "api_key_hash" not in listed.__dict__


class TestWatchlist:
    """Add and remove are atomic and idempotent."""

    async def test_add_remove(self, db_session: AsyncSession) -> None:
        repo = ClientRepository(db_session)
        client = await make_client(db_session)
        first, second = await make_company(db_session), await make_company(db_session)
        assert await repo.add_to_watchlist(client.id, first.id) == [first.id]
        assert await repo.add_to_watchlist(client.id, first.id) == [first.id]
        assert await repo.add_to_watchlist(client.id, second.id) == [first.id, second.id]
        assert client.watchlist == [first.id, second.id]
        assert await repo.remove_from_watchlist(client.id, first.id) == [second.id]
        assert await repo.remove_from_watchlist(client.id, first.id) == [second.id]
        assert client.version == 4

    async def test_missing_rows(self, db_session: AsyncSession) -> None:
        repo = ClientRepository(db_session)
        client = await make_client(db_session)
        company = await make_company(db_session)
        with pytest.raises(NotFoundError):
            await repo.add_to_watchlist(client.id, 987654321)
        with pytest.raises(NotFoundError):
            await repo.add_to_watchlist(987654321, company.id)
        with pytest.raises(NotFoundError):
            await repo.remove_from_watchlist(987654321, company.id)
        await CompanyRepository(db_session).delete(company.id)
        with pytest.raises(NotFoundError):
            await repo.add_to_watchlist(client.id, company.id)


class TestAlerts:
    """``find_triggered`` matches companies, types, severity and cooldown."""

    async def test_matching(self, db_session: AsyncSession) -> None:
        repo = AlertRepository(db_session)
        company = await make_company(db_session)
        other = await make_company(db_session)
        client = await make_client(db_session)
        any_alert = await make_alert(db_session, client_id=client.id)
        for_company = await make_alert(db_session, client_id=client.id, company_ids=[company.id])
        for_other = await make_alert(db_session, client_id=client.id, company_ids=[other.id])
        filings = await make_alert(db_session, client_id=client.id, signal_types=["sec_filing"])
        severe = await make_alert(db_session, client_id=client.id, min_severity="high")
        await make_alert(db_session, client_id=client.id, is_active=False)
        cooling = await make_alert(
            db_session,
            client_id=client.id,
            last_triggered_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
            cooldown_minutes=60,
        )
        cooled = await make_alert(
            db_session,
            client_id=client.id,
            last_triggered_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=61),
            cooldown_minutes=60,
        )
        mine = {a.id for a in (any_alert, for_company, for_other, filings, severe, cooling, cooled)}

        async def fired(**signal: object) -> set[int]:
            return {a.id for a in await repo.find_triggered(**signal) if a.id in mine}  # type: ignore[arg-type]

        assert await fired(company_id=company.id, signal_type="news", severity="medium") == {
            any_alert.id,
            for_company.id,
            cooled.id,
        }
        assert await fired(
            company_id=company.id, signal_type="sec_filing", severity="critical"
        ) == {
            any_alert.id,
            for_company.id,
            filings.id,
            severe.id,
            cooled.id,
        }
        signal = await make_signal(
            db_session, company_id=other.id, signal_type="sec_filing", severity="high"
        )
        assert await fired(signal=signal) == {
            any_alert.id,
            for_other.id,
            filings.id,
            severe.id,
            cooled.id,
        }
        with pytest.raises(ValidationError):
            await repo.find_triggered(company_id=company.id)
        with pytest.raises(ValidationError):
            await repo.find_triggered(company_id=company.id, signal_type="gossip")

    async def test_mark_triggered_counts_and_starts_the_cooldown(
        self, db_session: AsyncSession
    ) -> None:
        repo = AlertRepository(db_session)
        alert = await make_alert(db_session, company_ids=[])
        company = await make_company(db_session)
        marked = await repo.mark_triggered(alert.id)
        assert marked is alert
        assert (alert.trigger_count, alert.version) == (1, 1)
        assert alert.last_triggered_at is not None
        assert (await repo.mark_triggered(alert.id)).trigger_count == 2
        fired = await repo.find_triggered(company_id=company.id, signal_type="news")
        assert alert.id not in {a.id for a in fired}
        with pytest.raises(NotFoundError):
            await repo.mark_triggered(987654321)

    async def test_list_for_client(self, db_session: AsyncSession) -> None:
        repo = AlertRepository(db_session)
        client = await make_client(db_session)
        active = await make_alert(db_session, client_id=client.id, name="b")
        await make_alert(db_session, client_id=client.id, name="a", is_active=False)
        assert [a.id for a in await repo.list_for_client(client.id)] == [active.id]
        assert len(await repo.list_for_client(client.id, active_only=False)) == 2


class TestReports:
    """Reports by type and date range; distribution."""

    async def test_by_type_and_range(self, db_session: AsyncSession) -> None:
        repo = ReportRepository(db_session)
        kind = "quarterly-test"
        made = [
            await make_report(db_session, report_type=kind, report_date=dt.date(2025, m, 1))
            for m in (1, 4, 7)
        ]
        await make_report(db_session, report_type="other", report_date=dt.date(2025, 4, 1))
        in_range = await repo.get_by_type(kind, dt.date(2025, 3, 1), dt.date(2025, 12, 31))
        assert [r.id for r in in_range] == [made[2].id, made[1].id]
        assert (await repo.get_latest(kind)) is made[2]
        await repo.delete(made[2].id)
        assert (await repo.get_latest(kind)) is made[1]
        assert await repo.get_by_type("none") == []

    async def test_mark_distributed(self, db_session: AsyncSession) -> None:
        repo = ReportRepository(db_session)
        report = await make_report(db_session)
        done = await repo.mark_distributed(report.id, ["a@example.com"])
        assert done.status is ReportStatus.DISTRIBUTED
        assert done.recipients == ["a@example.com"]
        assert done.distributed_at is not None
        with pytest.raises(NotFoundError):
            await repo.mark_distributed(987654321)
