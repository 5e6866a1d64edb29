"""Repositories: one per aggregate over one ``AsyncSession``; they flush, never commit.

See :mod:`biotech_ma_db.repositories.base` for the generic core (its reads in
:mod:`biotech_ma_db.repositories.read`), :mod:`biotech_ma_db.repositories.query` for
sorting, filtering and pagination, and :mod:`biotech_ma_db.repositories.validation` for
the checks every value passes before SQL.
"""

from biotech_ma_db.repositories.acquirer_match import AcquirerMatchRepository
from biotech_ma_db.repositories.alert import AlertRepository
from biotech_ma_db.repositories.api_key import ApiKeyRepository
from biotech_ma_db.repositories.audit import AuditLogRepository
from biotech_ma_db.repositories.base import ReadRepository, Repository, translating_errors
from biotech_ma_db.repositories.client import ClientRepository, hash_api_key
from biotech_ma_db.repositories.company import CompanyRepository
from biotech_ma_db.repositories.drug_candidate import DrugCandidateRepository
from biotech_ma_db.repositories.query import MAX_LIMIT, OffsetPage, Page
from biotech_ma_db.repositories.report import ReportRepository
from biotech_ma_db.repositories.score import ScoreRepository
from biotech_ma_db.repositories.signal import SignalRepository
from biotech_ma_db.repositories.validation import ModelRules, rules_for
from biotech_ma_db.repositories.webhook import WebhookRepository

__all__ = [
    "MAX_LIMIT",
    "AcquirerMatchRepository",
    "AlertRepository",
    "ApiKeyRepository",
    "AuditLogRepository",
    "ClientRepository",
    "CompanyRepository",
    "DrugCandidateRepository",
    "ModelRules",
    "OffsetPage",
    "Page",
    "ReadRepository",
    "ReportRepository",
    "Repository",
    "ScoreRepository",
    "SignalRepository",
    "WebhookRepository",
    "hash_api_key",
    "rules_for",
    "translating_errors",
]
