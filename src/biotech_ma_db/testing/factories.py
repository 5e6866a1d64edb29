"""Factories: one ``await make_x(session, **overrides)`` per model, for tests.

Each factory builds a valid row with deterministic, unique values (tickers ``T000001``,
``T000002`` ... per process), applies ``overrides``, adds it to the session and flushes,
so the returned object has its id and server defaults.  Parent rows are created when no
id is given (``make_signal(session)`` also makes a company).  Factories write through the
ORM without the repositories' validation, so a test can also build odd states (a
soft-deleted row, a past ``next_attempt_at``).

``session`` may be an ``AsyncSession`` or a :class:`~biotech_ma_db.UnitOfWork`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from decimal import Decimal
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db.models import (
    AcquirerMatch,
    Alert,
    AuditAction,
    AuditLogEntry,
    Base,
    Client,
    Company,
    DevelopmentPhase,
    DrugCandidate,
    MAScore,
    Report,
    Severity,
    Signal,
    SignalType,
    Webhook,
    WebhookDelivery,
)
from biotech_ma_db.unit_of_work import UnitOfWork

__all__ = [
    "make_acquirer_match",
    "make_alert",
    "make_audit_log_entry",
    "make_client",
    "make_company",
    "make_drug_candidate",
    "make_report",
    "make_score",
    "make_signal",
    "make_webhook",
    "make_webhook_delivery",
    "next_number",
    "unique_ticker",
]

ModelT = TypeVar("ModelT", bound=Base)

_sequence = itertools.count(1)
_EPOCH: Final = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def next_number() -> int:
    """The next number of this process's factory sequence."""
    return next(_sequence)


def unique_ticker() -> str:
    """A ticker no other factory call in this process returned (``T000001`` ...)."""
    return f"T{next_number():06d}"


def _session(target: AsyncSession | UnitOfWork) -> AsyncSession:
    return target.session if isinstance(target, UnitOfWork) else target


async def _save(target: AsyncSession | UnitOfWork, row: ModelT) -> ModelT:
    session = _session(target)
    session.add(row)
    await session.flush()
    return row


async def make_company(target: AsyncSession | UnitOfWork, **overrides: object) -> Company:
    """A company with a unique ticker, $1B market cap and 20 months of runway."""
    ticker = overrides.pop("ticker", None) or unique_ticker()
    values: dict[str, object] = {
        "ticker": ticker,
        "name": f"{ticker} Therapeutics",
        "exchange": "NASDAQ",
        "market_cap_usd": Decimal("1000000000.00"),
        "cash_position_usd": Decimal("200000000.00"),
        "quarterly_burn_usd": Decimal("30000000.00"),
        "therapeutic_areas": ["oncology"],
        "headquarters_country": "US",
        "employee_count": 120,
        "founded_year": 2010,
    }
    return await _save(target, Company(**(values | overrides)))


async def _company_id(target: AsyncSession | UnitOfWork, overrides: dict[str, object]) -> int:
    company_id = overrides.pop("company_id", None)
    if isinstance(company_id, int):
        return company_id
    return (await make_company(target)).id


async def make_drug_candidate(
    target: AsyncSession | UnitOfWork, **overrides: object
) -> DrugCandidate:
    """A phase 2 oncology candidate (its company is created unless ``company_id``)."""
    company_id = await _company_id(target, overrides)
    values: dict[str, object] = {
        "company_id": company_id,
        "drug_name": f"BMA-{next_number():05d}",
        "phase": DevelopmentPhase.PHASE_2,
        "indication": "solid tumours",
        "therapeutic_area": "oncology",
    }
    return await _save(target, DrugCandidate(**(values | overrides)))


async def make_signal(target: AsyncSession | UnitOfWork, **overrides: object) -> Signal:
    """A medium news signal dated after 2025-01-01, as the subclass of its type."""
    company_id = await _company_id(target, overrides)
    number = next_number()
    values: dict[str, object] = {
        "company_id": company_id,
        "signal_type": SignalType.NEWS,
        "event_date": _EPOCH + dt.timedelta(hours=number),
        "severity": Severity.MEDIUM,
        "title": f"Signal {number}",
        "signal_data": {},
    }
    return await _save(target, Signal(**(values | overrides)))


async def make_score(target: AsyncSession | UnitOfWork, **overrides: object) -> MAScore:
    """A score of 50 dated today (UTC) unless ``score_date`` is given."""
    company_id = await _company_id(target, overrides)
    values: dict[str, object] = {
        "company_id": company_id,
        "score_date": dt.datetime.now(dt.UTC).date(),
        "total_score": Decimal("50.00"),
    }
    return await _save(target, MAScore(**(values | overrides)))


async def make_acquirer_match(
    target: AsyncSession | UnitOfWork, **overrides: object
) -> AcquirerMatch:
    """A match between two companies (created unless their ids are given)."""
    target_id = overrides.pop("target_company_id", None)
    acquirer_id = overrides.pop("acquirer_company_id", None)
    values: dict[str, object] = {
        "target_company_id": target_id
        if isinstance(target_id, int)
        else (await make_company(target)).id,
        "acquirer_company_id": acquirer_id
        if isinstance(acquirer_id, int)
        else (await make_company(target)).id,
        "strategic_fit_score": Decimal("70.00"),
        "therapeutic_overlap": ["oncology"],
    }
    return await _save(target, AcquirerMatch(**(values | overrides)))


async def make_report(target: AsyncSession | UnitOfWork, **overrides: object) -> Report:
    """A weekly report dated 2025-01-06, ready in local storage."""
    number = next_number()
    values: dict[str, object] = {
        "report_type": "weekly",
        "report_date": dt.date(2025, 1, 6),
        "period_start": dt.date(2024, 12, 30),
        "period_end": dt.date(2025, 1, 5),
        "title": f"Weekly report {number}",
        "storage_uri": f"file:///reports/{number}.pdf",
        "content_type": "application/pdf",
        "size_bytes": 1024,
        "sha256": hashlib.sha256(str(number).encode()).hexdigest(),
    }
    return await _save(target, Report(**(values | overrides)))


async def make_client(target: AsyncSession | UnitOfWork, **overrides: object) -> Client:
    """An active client with a made-up key digest (use the repository for a real key)."""
    number = next_number()
    values: dict[str, object] = {
        "name": f"Client {number}",
        "api_key_prefix": f"bmap_test_{number:08d}",
        "api_key_hash": hashlib.sha256(f"factory-key-{number}".encode()).hexdigest(),
        "scopes": ["read"],
    }
    return await _save(target, Client(**(values | overrides)))


async def _client_id(target: AsyncSession | UnitOfWork, overrides: dict[str, object]) -> int:
    client_id = overrides.pop("client_id", None)
    if isinstance(client_id, int):
        return client_id
    return (await make_client(target)).id


async def make_alert(target: AsyncSession | UnitOfWork, **overrides: object) -> Alert:
    """An active alert on any company and signal type (its client created if needed)."""
    client_id = await _client_id(target, overrides)
    values: dict[str, object] = {
        "client_id": client_id,
        "name": f"Alert {next_number()}",
        "alert_type": "signal",
        "channels": ["email"],
        "cooldown_minutes": 60,
    }
    return await _save(target, Alert(**(values | overrides)))


async def make_webhook(target: AsyncSession | UnitOfWork, **overrides: object) -> Webhook:
    """An active https webhook for every event, with a test secret."""
    client_id = await _client_id(target, overrides)
    number = next_number()
    values: dict[str, object] = {
        "client_id": client_id,
        "url": f"https://hooks.example.com/{number}",
        "event_types": ["signal.created"],
        "secret": f"whsec_test_{number}",
        "max_retries": 3,
        "backoff_seconds": 60,
    }
    return await _save(target, Webhook(**(values | overrides)))


async def make_webhook_delivery(
    target: AsyncSession | UnitOfWork, **overrides: object
) -> WebhookDelivery:
    """A pending delivery that is due now (its webhook created if needed)."""
    webhook_id = overrides.pop("webhook_id", None)
    if not isinstance(webhook_id, int):
        webhook_id = (await make_webhook(target)).id
    number = next_number()
    values: dict[str, object] = {
        "webhook_id": webhook_id,
        "event_id": f"evt_{number}",
        "event_type": "signal.created",
        "payload": {"n": number},
        "next_attempt_at": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
    }
    return await _save(target, WebhookDelivery(**(values | overrides)))


async def make_audit_log_entry(
    target: AsyncSession | UnitOfWork, **overrides: object
) -> AuditLogEntry:
    """An ``insert`` entry for a made-up companies row."""
    values: dict[str, object] = {
        "actor": "factory",
        "table_name": "companies",
        "row_id": next_number(),
        "action": AuditAction.INSERT,
        "changes": {},
    }
    return await _save(target, AuditLogEntry(**(values | overrides)))
