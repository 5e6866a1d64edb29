"""``signals``: dated market events about a company, one subclass per signal type.

The table is mapped with single-table inheritance on ``signal_type``.  Each subclass adds
typed, read-only accessors over the keys it expects in ``signal_data`` (JSONB), which
answer ``None`` when a key is missing or holds a value of the wrong shape::

    signal = Signal(signal_type="sec_filing", signal_data={"filing_type": "8-K"}, ...)
    assert isinstance(signal, SecFilingSignal)      # the base class picks the subclass
    signal.filing_type                              # "8-K"

Rows read back always come out as the subclass of their ``signal_type``.

The table is range-partitioned by month on ``event_date`` (migration ``0003``; see
:mod:`biotech_ma_db.partitions`), so its primary key is ``(id, event_date)``: PostgreSQL
wants the partition key in every unique constraint.  The mapper's identity is ``id``
alone, which the identity sequence keeps unique.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Self, cast

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Numeric, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biotech_ma_db.models.base import AuditMixin, Base, TimestampMixin
from biotech_ma_db.models.enums import Severity, SignalType, checked_enum

if TYPE_CHECKING:
    from biotech_ma_db.models.company import Company

__all__ = [
    "ClinicalTrialSignal",
    "ExecutiveChangeSignal",
    "FdaApprovalSignal",
    "FinancingSignal",
    "InsiderTradingSignal",
    "NewsSignal",
    "PartnershipSignal",
    "PatentSignal",
    "SecFilingSignal",
    "Signal",
]


class Signal(AuditMixin, TimestampMixin, Base):
    """A market signal about a company (the polymorphic base class).

    Constructing ``Signal(signal_type=...)`` with a known type returns an instance of that
    type's subclass, so the object is the same class before and after a round trip.
    ``ma_impact_score`` runs from -100 (makes a deal less likely) to 100.  Change
    ``signal_data`` by assigning a new dict: in-place changes are not tracked.
    """

    __tablename__ = "signals"

    company_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("companies.id", ondelete="CASCADE")
    )
    signal_type: Mapped[SignalType] = mapped_column(checked_enum(SignalType, "signal_type"))
    # In the table's key because the table is partitioned on it (see the module doc).
    event_date: Mapped[dt.datetime] = mapped_column(primary_key=True)
    severity: Mapped[Severity] = mapped_column(
        checked_enum(Severity, "severity"), server_default=Severity.MEDIUM.value
    )
    title: Mapped[str]
    description: Mapped[str | None]
    source: Mapped[str | None]
    source_url: Mapped[str | None]
    signal_data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    ma_impact_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))

    company: Mapped[Company] = relationship(back_populates="signals", lazy="raise")

    # The identity stays ``id`` alone: ``session.get(Signal, id)``, the identity map and the
    # fast read paths keep working with one key, and the ORM's UPDATE/DELETE still name
    # both key columns (the partition key lets PostgreSQL go straight to one partition).
    __mapper_args__ = {
        "polymorphic_on": "signal_type",
        "eager_defaults": True,
        "primary_key": ["id"],
    }

    __table_args__ = (
        Index(None, "company_id", "signal_type"),
        Index("ix_signals_company_id_event_date", "company_id", text("event_date DESC")),
        Index(None, "event_date"),
        Index(None, "severity"),
        Index(None, "signal_data", postgresql_using="gin"),
        CheckConstraint("ma_impact_score BETWEEN -100 AND 100", name="ma_impact_score_range"),
        {"postgresql_partition_by": "RANGE (event_date)"},
    )

    def __new__(cls, **kwargs: object) -> Self:
        """Pick the subclass of ``signal_type`` when the base class is constructed."""
        target: type[Signal] = cls
        signal_type = kwargs.get("signal_type")
        if cls is Signal and isinstance(signal_type, str):
            mapper = cls.__mapper__.polymorphic_map.get(signal_type)
            if mapper is not None:
                target = mapper.class_
        return cast("Self", super().__new__(target))

    @property
    def data(self) -> Mapping[str, object]:
        """``signal_data`` as a read-only mapping (empty when unset)."""
        return self.signal_data or {}


def _text(data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _int(data: Mapping[str, object], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    return None


def _decimal(data: Mapping[str, object], key: str) -> Decimal | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        # str() first: Decimal(0.1) would carry the float's binary expansion.
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _float(data: Mapping[str, object], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _bool(data: Mapping[str, object], key: str) -> bool | None:
    value = data.get(key)
    return value if isinstance(value, bool) else None


def _date(data: Mapping[str, object], key: str) -> dt.date | None:
    value = data.get(key)
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


class SecFilingSignal(Signal):
    """An SEC filing (8-K, 10-Q, S-1, 13D ...)."""

    __mapper_args__ = {"polymorphic_identity": SignalType.SEC_FILING, "eager_defaults": True}

    @property
    def filing_type(self) -> str | None:
        """Form type, e.g. ``"8-K"`` (``signal_data["filing_type"]``)."""
        return _text(self.data, "filing_type")

    @property
    def filing_url(self) -> str | None:
        """Link to the filing on EDGAR (``signal_data["url"]``)."""
        return _text(self.data, "url")

    @property
    def accession_number(self) -> str | None:
        """EDGAR accession number (``signal_data["accession_number"]``)."""
        return _text(self.data, "accession_number")


class FdaApprovalSignal(Signal):
    """An FDA regulatory decision (approval, complete response letter ...)."""

    __mapper_args__ = {"polymorphic_identity": SignalType.FDA_APPROVAL, "eager_defaults": True}

    @property
    def decision(self) -> str | None:
        """The outcome, e.g. ``"approved"`` or ``"crl"`` (``signal_data["decision"]``)."""
        return _text(self.data, "decision")

    @property
    def drug_name(self) -> str | None:
        """The drug concerned (``signal_data["drug_name"]``)."""
        return _text(self.data, "drug_name")

    @property
    def application_number(self) -> str | None:
        """NDA/BLA number (``signal_data["application_number"]``)."""
        return _text(self.data, "application_number")

    @property
    def indication(self) -> str | None:
        """The indication decided on (``signal_data["indication"]``)."""
        return _text(self.data, "indication")


class ClinicalTrialSignal(Signal):
    """A clinical trial event (start, readout, halt ...)."""

    __mapper_args__ = {"polymorphic_identity": SignalType.CLINICAL_TRIAL, "eager_defaults": True}

    @property
    def nct_id(self) -> str | None:
        """ClinicalTrials.gov identifier, e.g. ``"NCT01234567"`` (``signal_data["nct_id"]``)."""
        return _text(self.data, "nct_id")

    @property
    def trial_phase(self) -> str | None:
        """Phase of the trial, e.g. ``"phase_3"`` (``signal_data["trial_phase"]``)."""
        return _text(self.data, "trial_phase")

    @property
    def trial_status(self) -> str | None:
        """Status such as ``"completed"`` (``signal_data["status"]``)."""
        return _text(self.data, "status")

    @property
    def primary_endpoint_met(self) -> bool | None:
        """Whether the primary endpoint was met (``signal_data["primary_endpoint_met"]``)."""
        return _bool(self.data, "primary_endpoint_met")

    @property
    def enrollment(self) -> int | None:
        """Number of patients enrolled (``signal_data["enrollment"]``)."""
        return _int(self.data, "enrollment")


class InsiderTradingSignal(Signal):
    """A trade by an insider (Form 4)."""

    __mapper_args__ = {
        "polymorphic_identity": SignalType.INSIDER_TRADING,
        "eager_defaults": True,
    }

    @property
    def insider_name(self) -> str | None:
        """Who traded (``signal_data["insider_name"]``)."""
        return _text(self.data, "insider_name")

    @property
    def transaction_type(self) -> str | None:
        """``"buy"`` or ``"sell"`` (``signal_data["transaction_type"]``)."""
        return _text(self.data, "transaction_type")

    @property
    def shares(self) -> int | None:
        """Number of shares traded (``signal_data["shares"]``)."""
        return _int(self.data, "shares")

    @property
    def price_usd(self) -> Decimal | None:
        """Price per share in USD (``signal_data["price_usd"]``)."""
        return _decimal(self.data, "price_usd")

    @property
    def value_usd(self) -> Decimal | None:
        """Total value in USD (``signal_data["value_usd"]``)."""
        return _decimal(self.data, "value_usd")


class PartnershipSignal(Signal):
    """A licensing deal, collaboration or co-development agreement."""

    __mapper_args__ = {"polymorphic_identity": SignalType.PARTNERSHIP, "eager_defaults": True}

    @property
    def partner_name(self) -> str | None:
        """The counterparty (``signal_data["partner_name"]``)."""
        return _text(self.data, "partner_name")

    @property
    def deal_type(self) -> str | None:
        """E.g. ``"licensing"`` (``signal_data["deal_type"]``)."""
        return _text(self.data, "deal_type")

    @property
    def deal_value_usd(self) -> Decimal | None:
        """Total deal value in USD (``signal_data["deal_value_usd"]``)."""
        return _decimal(self.data, "deal_value_usd")

    @property
    def upfront_payment_usd(self) -> Decimal | None:
        """Upfront payment in USD (``signal_data["upfront_payment_usd"]``)."""
        return _decimal(self.data, "upfront_payment_usd")


class FinancingSignal(Signal):
    """A capital raise: offering, PIPE, debt, ATM program ..."""

    __mapper_args__ = {"polymorphic_identity": SignalType.FINANCING, "eager_defaults": True}

    @property
    def financing_type(self) -> str | None:
        """E.g. ``"follow_on_offering"`` (``signal_data["financing_type"]``)."""
        return _text(self.data, "financing_type")

    @property
    def amount_usd(self) -> Decimal | None:
        """Amount raised in USD (``signal_data["amount_usd"]``)."""
        return _decimal(self.data, "amount_usd")

    @property
    def lead_investor(self) -> str | None:
        """Lead investor or underwriter (``signal_data["lead_investor"]``)."""
        return _text(self.data, "lead_investor")


class ExecutiveChangeSignal(Signal):
    """An executive or board appointment or departure."""

    __mapper_args__ = {
        "polymorphic_identity": SignalType.EXECUTIVE_CHANGE,
        "eager_defaults": True,
    }

    @property
    def executive_name(self) -> str | None:
        """The person (``signal_data["executive_name"]``)."""
        return _text(self.data, "executive_name")

    @property
    def position(self) -> str | None:
        """The role, e.g. ``"CEO"`` (``signal_data["position"]``)."""
        return _text(self.data, "position")

    @property
    def change_type(self) -> str | None:
        """``"appointed"`` or ``"departed"`` (``signal_data["change_type"]``)."""
        return _text(self.data, "change_type")


class PatentSignal(Signal):
    """A patent grant, challenge or expiry."""

    __mapper_args__ = {"polymorphic_identity": SignalType.PATENT, "eager_defaults": True}

    @property
    def patent_number(self) -> str | None:
        """E.g. ``"US 10,123,456"`` (``signal_data["patent_number"]``)."""
        return _text(self.data, "patent_number")

    @property
    def expiry_date(self) -> dt.date | None:
        """Expiry date from an ISO string (``signal_data["expiry_date"]``)."""
        return _date(self.data, "expiry_date")

    @property
    def jurisdiction(self) -> str | None:
        """E.g. ``"US"`` or ``"EP"`` (``signal_data["jurisdiction"]``)."""
        return _text(self.data, "jurisdiction")


class NewsSignal(Signal):
    """A news article or press release."""

    __mapper_args__ = {"polymorphic_identity": SignalType.NEWS, "eager_defaults": True}

    @property
    def publisher(self) -> str | None:
        """The outlet (``signal_data["publisher"]``)."""
        return _text(self.data, "publisher")

    @property
    def sentiment(self) -> float | None:
        """Sentiment from -1 (negative) to 1 (``signal_data["sentiment"]``)."""
        return _float(self.data, "sentiment")

    @property
    def article_url(self) -> str | None:
        """Link to the article (``signal_data["url"]``)."""
        return _text(self.data, "url")
