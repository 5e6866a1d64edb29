"""T-SEC-8: bad input maps to InvalidInputError (never a 500) and the connection survives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from biotech_ma_db import Database, InvalidInputError, UnitOfWork

from .conftest import Figure, new_tenant

Case = Callable[[UnitOfWork], Awaitable[object]]

# Refused by the library before any SQL is sent.
BEFORE_SQL: dict[str, Case] = {
    "NUL byte in text": lambda uow: uow.companies.create(ticker="NULX", name="a\x00b"),
    "over-length text": lambda uow: uow.companies.create(ticker="LONGX", name="x" * 10_001),
    "over-length ticker": lambda uow: uow.companies.create(ticker="TOOLONGTICKER", name="n"),
    "malformed id": lambda uow: uow.companies.get("1 OR 1=1"),  # type: ignore[arg-type]
    "boolean id": lambda uow: uow.companies.get(True),
    "enum outside its set": lambda uow: uow.signals.create(
        company_id=1,
        signal_type="gossip",
        event_date="2025-01-01",  # type: ignore[arg-type]
        title="t",
    ),
    "severity outside its set": lambda uow: uow.signals.get_by_company(1, min_severity="dire"),
    "negative money": lambda uow: uow.companies.create(ticker="NEGX", name="n", market_cap_usd=-1),
    "NaN amount": lambda uow: uow.companies.create(
        ticker="NANX", name="n", market_cap_usd=float("nan")
    ),
    "NUL byte in API key": lambda uow: uow.api_keys.issue(1, name="a\x00b"),
    "naive expiry": lambda uow: uow.api_keys.issue(1, expires_at=dt.datetime(2030, 1, 1)),  # noqa: DTZ001
    "NUL byte in webhook secret": lambda uow: uow.webhooks.create(
        client_id=1, url="https://x.example", secret="a\x00b"
    ),
    "unknown column": lambda uow: uow.companies.create(ticker="UNKX", name="n", is_admin=True),
    "huge limit": lambda uow: uow.companies.list(limit=10**9),
}

# Refused by PostgreSQL (the checks above bypassed with raw SQL): SQLSTATE class 22.
BY_SERVER: dict[str, tuple[str, dict[str, object]]] = {
    "NUL byte (22021)": ("SELECT CAST(:v AS text)", {"v": "a\x00b"}),
    "over-length varchar (22001)": (
        "INSERT INTO reports (report_type, report_date, title, status) "
        "VALUES ('r', CURRENT_DATE, 't', :v)",
        {"v": "x" * 40},
    ),
    "malformed UUID (22P02)": ("SELECT CAST(:v AS uuid)", {"v": "not-a-uuid"}),
    "bad integer text (22P02)": ("SELECT CAST(:v AS bigint)", {"v": "12abc"}),
    "integer out of range (22003)": ("SELECT CAST(:v AS integer)", {"v": "99999999999"}),
    "division by zero (22012)": ("SELECT 1 / CAST(:v AS integer)", {"v": "0"}),
    "bad timestamp (22007)": ("SELECT CAST(:v AS timestamptz)", {"v": "yesterday-ish"}),
}


class TestInputBounds:
    """Every case raises InvalidInputError and leaves the pool healthy."""

    async def test_bad_input_is_typed_and_harmless(self, rw_db: Database, figure: Figure) -> None:
        tenant = await new_tenant(rw_db, "Bounds")
        outcomes: dict[str, str] = {}
        for name, case in BEFORE_SQL.items():
            async with rw_db.unit_of_work(client_id=tenant.client_id) as uow:
                try:
                    await case(uow)
                except InvalidInputError:
                    outcomes[name] = "InvalidInputError"
                except Exception as exc:  # noqa: BLE001 — recorded and asserted below
                    outcomes[name] = type(exc).__name__
                else:
                    outcomes[name] = "accepted"
                # Refused before SQL: the same unit of work goes on working.
                assert await uow.companies.count() >= 0
        for name, (sql, params) in BY_SERVER.items():
            try:
                async with rw_db.unit_of_work() as uow:
                    await uow.session.execute(text(sql), params)
            except InvalidInputError as exc:
                outcomes[name] = f"InvalidInputError[{exc.sqlstate}]"
            except Exception as exc:  # noqa: BLE001 — recorded and asserted below
                outcomes[name] = type(exc).__name__
            else:
                outcomes[name] = "accepted"
        async with rw_db.unit_of_work() as uow:
            assert await uow.companies.count() >= 0
        status = rw_db.pool_status()
        wrong = {k: v for k, v in outcomes.items() if not v.startswith("InvalidInputError")}
        assert wrong == {}
        assert status.checked_out == 0
        figure(
            f"{len(BEFORE_SQL)} bad inputs refused before SQL + {len(BY_SERVER)} refused by "
            f"the server: {len(outcomes)} x InvalidInputError, 0 other errors; pool "
            f"checked-out {status.checked_out}, next unit of work ok"
        )

    @pytest.mark.parametrize("value", ["abc", "1.5", "", " 1"])
    async def test_client_id_must_be_an_integer(self, rw_db: Database, value: str) -> None:
        with pytest.raises(InvalidInputError):
            rw_db.unit_of_work(client_id=value)  # type: ignore[arg-type]
