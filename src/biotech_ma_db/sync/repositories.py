"""Typed Protocols of the synchronous repository proxies (generated: do not edit).

One ``Sync<Repository>`` per repository: its public coroutine methods as blocking calls,
with the same parameters, returning what the coroutine returns.  Written by
``tools/generate_sync_protocols.py`` from the repositories' source; a unit test
fails when it is out of date.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol

from biotech_ma_db.models import (
    AcquirerMatch,
    Alert,
    ApiKey,
    AuditLogEntry,
    Client,
    Company,
    CompanyRow,
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
from biotech_ma_db.repositories._support import Criterion, Loadable, ModelT
from biotech_ma_db.repositories.api_key import AuthenticatedKey
from biotech_ma_db.repositories.query import OffsetPage, Page, SortSpec

__all__ = [
    "SyncAcquirerMatchRepository",
    "SyncAlertRepository",
    "SyncApiKeyRepository",
    "SyncAuditLogRepository",
    "SyncClientRepository",
    "SyncCompanyRepository",
    "SyncDrugCandidateRepository",
    "SyncReadRepository",
    "SyncReportRepository",
    "SyncRepository",
    "SyncScoreRepository",
    "SyncSignalRepository",
    "SyncWebhookRepository",
]


class SyncReadRepository(Protocol[ModelT]):
    """Blocking calls of :class:`~biotech_ma_db.repositories.ReadRepository`."""

    def get(
        self, id_: int, /, *, load: Sequence[Loadable] = ..., include_deleted: bool = ...
    ) -> ModelT | None:
        """The row with primary key ``id_``, or ``None``."""

    def get_or_raise(
        self, id_: int, /, *, load: Sequence[Loadable] = ..., include_deleted: bool = ...
    ) -> ModelT:
        """Like :meth:`get`, but raises ``NotFoundError`` instead of returning ``None``."""

    def get_many(self, ids: Iterable[int], *, include_deleted: bool = ...) -> builtins.list[ModelT]:
        """The rows whose keys are in ``ids`` (missing ones left out), ordered by id."""

    def find_one(self, *, include_deleted: bool = ..., **equals: object) -> ModelT | None:
        """The one row whose columns equal ``equals``, or ``None``."""

    def list(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = ...,
        order_by: SortSpec | None = ...,
        limit: int = ...,
        offset: int = ...,
        load: Sequence[Loadable] = ...,
        include_deleted: bool = ...,
    ) -> builtins.list[ModelT]:
        """Rows matching ``where`` and ``filters``, sorted, at most ``limit`` of them."""

    def count(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = ...,
        include_deleted: bool = ...,
    ) -> int:
        """How many rows match."""

    def exists(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = ...,
        include_deleted: bool = ...,
    ) -> bool:
        """Whether any row matches."""

    def page(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = ...,
        order_by: SortSpec | None = ...,
        limit: int = ...,
        after: str | None = ...,
        before: str | None = ...,
        load: Sequence[Loadable] = ...,
        include_deleted: bool = ...,
    ) -> Page[ModelT]:
        """A keyset page: stable under concurrent inserts, in both directions."""

    def page_with_total(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = ...,
        order_by: SortSpec | None = ...,
        limit: int = ...,
        offset: int = ...,
        load: Sequence[Loadable] = ...,
        include_deleted: bool = ...,
    ) -> OffsetPage[ModelT]:
        """An offset page plus the total number of matching rows (two statements)."""


class SyncRepository(SyncReadRepository[ModelT], Protocol[ModelT]):
    """Blocking calls of :class:`~biotech_ma_db.repositories.Repository`."""

    def create(self, **values: object) -> ModelT:
        """Validate ``values``, insert the row and return it (with server defaults)."""

    def add_many(self, items: Iterable[ModelT]) -> builtins.list[ModelT]:
        """Validate and insert already-built model objects in one flush."""

    def update(
        self, id_: int, /, *, expected_version: int | None = ..., **values: object
    ) -> ModelT:
        """Change some columns of one row and return it."""

    def delete(self, id_: int, /, *, hard: bool = ...) -> None:
        """Soft-delete the row (models with ``deleted_at``), or purge it with ``hard=True``."""

    def restore(self, id_: int, /) -> ModelT:
        """Undo a soft delete and return the row (a no-op for a row that is not deleted)."""


class SyncAcquirerMatchRepository(SyncRepository[AcquirerMatch], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.AcquirerMatchRepository`."""

    def get_top_matches_for_target(
        self, target_company_id: int, limit: int = ...
    ) -> builtins.list[AcquirerMatch]:
        """The target's best acquirers by rank, each with ``acquirer_company`` loaded."""

    def get_targets_for_acquirer(
        self, acquirer_company_id: int, limit: int = ...
    ) -> builtins.list[AcquirerMatch]:
        """Targets matched to an acquirer, best fit first, each with ``target_company``."""

    def replace_matches_for_target(
        self, target_company_id: int, matches: Sequence[Mapping[str, object]]
    ) -> builtins.list[AcquirerMatch]:
        """Replace all of a target's matches with ``matches``, re-ranked, atomically."""


class SyncAlertRepository(SyncRepository[Alert], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.AlertRepository`."""

    def list_for_client(
        self, client_id: int, *, active_only: bool = ..., limit: int = ...
    ) -> builtins.list[Alert]:
        """A client's alerts by name (only active ones unless ``active_only=False``)."""

    def find_triggered(
        self,
        signal: Signal | None = ...,
        *,
        company_id: int | None = ...,
        signal_type: SignalType | str | None = ...,
        severity: Severity | str | None = ...,
    ) -> builtins.list[Alert]:
        """Active alerts that a signal fires now."""

    def mark_triggered(self, alert_id: int) -> Alert:
        """Count one firing: ``trigger_count + 1`` and ``last_triggered_at = now()``."""


class SyncApiKeyRepository(SyncRepository[ApiKey], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.ApiKeyRepository`."""

    def issue(
        self, client_id: int, *, name: str | None = ..., expires_at: dt.datetime | None = ...
    ) -> tuple[ApiKey, str]:
        """Issue a new key for a client; other keys stay valid."""

    def add_issued(
        self,
        client_id: int,
        api_key: str,
        *,
        name: str | None = ...,
        expires_at: dt.datetime | None = ...,
    ) -> ApiKey:
        """Store the digest, prefix and last 4 characters of a key just generated."""

    def list_for_client(
        self, client_id: int, *, include_revoked: bool = ...
    ) -> builtins.list[ApiKey]:
        """A client's keys, oldest first (never their digests)."""

    def revoke(self, api_key_id: int) -> ApiKey:
        """Revoke a key now (a no-op for a revoked key); returns it."""

    def lookup(self, api_key: str) -> AuthenticatedKey | None:
        """The live key matching ``api_key`` (not revoked, not expired), or ``None``."""

    def get_by_prefix(self, key_prefix: str) -> ApiKey | None:
        """The key with this display prefix (``bmap_live_`` + 8 characters), or ``None``."""


class SyncAuditLogRepository(SyncReadRepository[AuditLogEntry], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.AuditLogRepository`."""

    def for_row(
        self, table_name: str, row_id: int, *, limit: int = ...
    ) -> builtins.list[AuditLogEntry]:
        """The history of one row, oldest first."""

    def for_transaction(
        self, transaction_id: int, *, limit: int = ...
    ) -> builtins.list[AuditLogEntry]:
        """Everything one transaction (one unit of work's commit) changed, in order."""


class SyncClientRepository(SyncRepository[Client], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.ClientRepository`."""

    def create_with_api_key(
        self, name: str, *, scopes: Sequence[str] = ..., **values: object
    ) -> tuple[Client, str]:
        """Create a client and its API key."""

    def authenticate(self, api_key: str) -> Client | None:
        """The active client owning ``api_key``, or ``None``."""

    def add_to_watchlist(self, client_id: int, company_id: int) -> builtins.list[int]:
        """Add a live company to the client's watchlist (no duplicates); returns the list."""

    def remove_from_watchlist(self, client_id: int, company_id: int) -> builtins.list[int]:
        """Remove a company from the client's watchlist (a no-op if absent); returns it."""


class SyncCompanyRepository(SyncRepository[Company], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.CompanyRepository`."""

    def get_by_ticker(self, ticker: str, *, include_deleted: bool = ...) -> Company | None:
        """The live company with ``ticker`` (case-sensitive, as stored), or ``None``."""

    def search(
        self,
        therapeutic_areas: Sequence[str] | None = ...,
        min_market_cap: Decimal | float | None = ...,
        max_market_cap: Decimal | float | None = ...,
        cash_constrained: bool | None = ...,
        query: str | None = ...,
        *,
        limit: int = ...,
        offset: int = ...,
        order_by: SortSpec | None = ...,
    ) -> builtins.list[Company]:
        """Live companies matching every given criterion, as tracked objects."""

    def search_rows(
        self,
        therapeutic_areas: Sequence[str] | None = ...,
        min_market_cap: Decimal | float | None = ...,
        max_market_cap: Decimal | float | None = ...,
        cash_constrained: bool | None = ...,
        query: str | None = ...,
        *,
        limit: int = ...,
        offset: int = ...,
        order_by: SortSpec | None = ...,
    ) -> builtins.list[CompanyRow]:
        """:meth:`search` for read-only listings: the same companies, as untracked rows."""

    def upsert_many(self, rows: Sequence[Mapping[str, object]]) -> int:
        """Insert companies, or update the live company holding the same ticker."""


class SyncDrugCandidateRepository(SyncRepository[DrugCandidate], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.DrugCandidateRepository`."""

    def get_by_company(
        self, company_id: int, phases: Sequence[DevelopmentPhase | str] | None = ...
    ) -> builtins.list[DrugCandidate]:
        """A company's drug candidates, optionally only in some phases, by name."""

    def pipeline_summary(self, company_id: int) -> dict[DevelopmentPhase, int]:
        """How many candidates the company has in each phase (every phase listed, in order)."""


class SyncReportRepository(SyncRepository[Report], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.ReportRepository`."""

    def get_by_type(
        self,
        report_type: str,
        start_date: dt.date | None = ...,
        end_date: dt.date | None = ...,
        *,
        limit: int = ...,
    ) -> builtins.list[Report]:
        """Live reports of one type dated within ``start_date``..``end_date``, newest first."""

    def get_latest(self, report_type: str) -> Report | None:
        """The most recent live report of ``report_type``, or ``None``."""

    def mark_distributed(
        self,
        report_id: int,
        recipients: Sequence[str] | None = ...,
        *,
        distributed_at: dt.datetime | None = ...,
    ) -> Report:
        """Record that the report was sent: status ``distributed``, time and recipients."""


class SyncScoreRepository(SyncRepository[MAScore], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.ScoreRepository`."""

    def create(  # type: ignore[override]
        self,
        *,
        company_id: int,
        total_score: Decimal | float,
        score_date: dt.date | None = ...,
        **values: object,
    ) -> MAScore:
        """Insert a score, filling ``score_change_30d``/``90d`` from the history."""

    def get_latest_by_company(self, company_id: int) -> MAScore | None:
        """The company's most recent score, or ``None``."""

    def get_history(self, company_id: int, days: int = ...) -> builtins.list[MAScore]:
        """The company's scores of the last ``days`` days (UTC), oldest first."""

    def get_top_scores(
        self, limit: int = ..., score_date: dt.date | None = ...
    ) -> builtins.list[MAScore]:
        """The highest scores, each with its ``company`` loaded (live companies only)."""

    def update_percentile_ranks(self, score_date: dt.date | None = ...) -> int:
        """Bring ``percentile_rank`` (0..1, ``percent_rank()`` by ``total_score``) up to date."""

    def upsert_many(self, rows: Sequence[Mapping[str, object]]) -> int:
        """Insert scores, or update the score the company already has for that day."""


class SyncSignalRepository(SyncRepository[Signal], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.SignalRepository`."""

    def create(  # type: ignore[override]
        self,
        *,
        company_id: int,
        signal_type: SignalType | str,
        event_date: dt.datetime,
        title: str,
        severity: Severity | str = ...,
        signal_data: Mapping[str, object] | None = ...,
        **values: object,
    ) -> Signal:
        """Insert a signal and return it as the subclass of its type."""

    def get_by_company(
        self,
        company_id: int,
        signal_types: Sequence[SignalType | str] | None = ...,
        start_date: dt.datetime | dt.date | None = ...,
        end_date: dt.datetime | dt.date | None = ...,
        min_severity: Severity | str | None = ...,
        *,
        limit: int = ...,
        offset: int = ...,
    ) -> builtins.list[Signal]:
        """A company's signals, newest first."""

    def get_count_by_type(self, company_id: int | None = ...) -> dict[str, int]:
        """Number of signals per type (only types that occur), for one company or all."""

    def bulk_ingest(self, rows: Iterable[Mapping[str, object]]) -> int:
        """Load many signals with PostgreSQL ``COPY``: all of them, or none."""


class SyncWebhookRepository(SyncRepository[Webhook], Protocol):
    """Blocking calls of :class:`~biotech_ma_db.repositories.WebhookRepository`."""

    def create(self, **values: object) -> Webhook:
        """Register a webhook; a signing ``secret`` is generated when none is given."""

    def update(
        self, id_: int, /, *, expected_version: int | None = ..., **values: object
    ) -> Webhook:
        """Change a webhook; a new ``secret`` is encrypted like on create."""

    def add_many(self, items: Iterable[Webhook]) -> builtins.list[Webhook]:
        """Insert webhooks built by the caller; plaintext secrets are encrypted first."""

    def reencrypt_secrets(self, limit: int = ...) -> int:
        """Re-seal up to ``limit`` secrets not sealed with the current key; returns how many."""

    def list_for_client(
        self, client_id: int, *, active_only: bool = ..., limit: int = ...
    ) -> builtins.list[Webhook]:
        """A client's webhooks, without their secrets."""

    def get_signing_secret(self, webhook_id: int) -> str:
        """The secret that signs the webhook's payloads."""

    def enqueue_delivery(
        self,
        webhook_id: int,
        event_type: str,
        payload: Mapping[str, object],
        event_id: str | None = ...,
    ) -> WebhookDelivery | None:
        """Queue one event for one webhook, at most once per ``event_id``."""

    def claim_due_deliveries(self, limit: int = ...) -> builtins.list[WebhookDelivery]:
        """Lock and return deliveries that are due, oldest due first."""

    def mark_delivered(self, delivery_id: int, *, status_code: int = ...) -> WebhookDelivery:
        """Record a successful delivery and reset the webhook's failure streak."""

    def mark_failed(
        self, delivery_id: int, *, error: str, status_code: int | None = ...
    ) -> WebhookDelivery:
        """Record a failed attempt and schedule the next one, or give up."""
