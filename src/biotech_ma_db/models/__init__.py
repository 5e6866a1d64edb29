"""The ORM models: one module per aggregate, all re-exported here.

Importing this package registers every table on :attr:`Base.metadata` (which Alembic
compares against the database) and installs the soft-delete filter
(:mod:`biotech_ma_db.models.soft_delete`).
"""

from biotech_ma_db.models.acquirer_match import AcquirerMatch
from biotech_ma_db.models.alert import Alert
from biotech_ma_db.models.api_key import ApiKey
from biotech_ma_db.models.audit import AuditLogEntry
from biotech_ma_db.models.base import (
    NAMING_CONVENTION,
    AuditMixin,
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
)
from biotech_ma_db.models.client import Client
from biotech_ma_db.models.company import Company, CompanyRow
from biotech_ma_db.models.drug_candidate import DrugCandidate
from biotech_ma_db.models.enums import (
    AuditAction,
    DeliveryStatus,
    DevelopmentPhase,
    ReportStatus,
    Severity,
    SignalType,
    StorageBackend,
)
from biotech_ma_db.models.report import Report
from biotech_ma_db.models.score import MAScore
from biotech_ma_db.models.signal import (
    ClinicalTrialSignal,
    ExecutiveChangeSignal,
    FdaApprovalSignal,
    FinancingSignal,
    InsiderTradingSignal,
    NewsSignal,
    PartnershipSignal,
    PatentSignal,
    SecFilingSignal,
    Signal,
)
from biotech_ma_db.models.soft_delete import INCLUDE_DELETED, install_soft_delete_filter
from biotech_ma_db.models.webhook import Webhook, WebhookDelivery

install_soft_delete_filter()

# Base.metadata under a plain name: migration tools look for a MetaData in the models
# package (pytest-alembic's test_all_models_register_on_metadata does).
metadata = Base.metadata

__all__ = [
    "INCLUDE_DELETED",
    "NAMING_CONVENTION",
    "AcquirerMatch",
    "Alert",
    "ApiKey",
    "AuditAction",
    "AuditLogEntry",
    "AuditMixin",
    "Base",
    "Client",
    "ClinicalTrialSignal",
    "Company",
    "CompanyRow",
    "DeliveryStatus",
    "DevelopmentPhase",
    "DrugCandidate",
    "ExecutiveChangeSignal",
    "FdaApprovalSignal",
    "FinancingSignal",
    "InsiderTradingSignal",
    "MAScore",
    "NewsSignal",
    "PartnershipSignal",
    "PatentSignal",
    "Report",
    "ReportStatus",
    "SecFilingSignal",
    "Severity",
    "Signal",
    "SignalType",
    "SoftDeleteMixin",
    "StorageBackend",
    "TimestampMixin",
    "VersionMixin",
    "Webhook",
    "WebhookDelivery",
    "install_soft_delete_filter",
    "metadata",
]
