"""``AlertRepository``: alert rules, which of them a signal triggers, trigger counting."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    Interval,
    Text,
    any_,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from biotech_ma_db.errors import NotFoundError, ValidationError
from biotech_ma_db.models import Alert, Severity, Signal, SignalType
from biotech_ma_db.repositories.base import Repository, check_id
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
    check_limit,
)
from biotech_ma_db.repositories.validation import rules_for

__all__ = ["AlertRepository"]

_ONE_MINUTE = literal_column("interval '1 minute'", type_=Interval)


class AlertRepository(Repository[Alert]):
    """Alert rules of API clients (soft-deletable, versioned)."""

    model = Alert
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": Alert.id,
        "name": Alert.name,
        "created_at": Alert.created_at,
        "last_triggered_at": Alert.last_triggered_at,
        "trigger_count": Alert.trigger_count,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "client_id": Alert.client_id,
        "alert_type": Alert.alert_type,
        "is_active": Alert.is_active,
    }
    default_order: ClassVar[SortSpec] = "name"

    async def list_for_client(
        self, client_id: int, *, active_only: bool = True, limit: int = DEFAULT_LIMIT
    ) -> builtins.list[Alert]:
        """A client's alerts by name (only active ones unless ``active_only=False``)."""
        criteria = [Alert.client_id == check_id(client_id, "client_id")]
        if active_only:
            criteria.append(Alert.is_active.is_(True))
        return await self.list(*criteria, limit=check_limit(limit))

    async def find_triggered(
        self,
        signal: Signal | None = None,
        *,
        company_id: int | None = None,
        signal_type: SignalType | str | None = None,
        severity: Severity | str | None = None,
    ) -> builtins.list[Alert]:
        """Active alerts that a signal fires now.

        An alert fires when its ``company_ids`` contain the company (or are empty = any),
        its ``signal_types`` contain the type (or are empty), its ``min_severity`` is at
        most the signal's severity (or unset), and its cooldown has passed since
        ``last_triggered_at`` (database clock).

        Args:
            signal: The signal; or give its fields below instead.
            company_id: The signal's company.
            signal_type: The signal's type.
            severity: The signal's severity (``medium`` when omitted).
        """
        if signal is not None:
            company_id, signal_type, severity = (
                signal.company_id,
                signal.signal_type,
                signal.severity,
            )
        if company_id is None or signal_type is None:
            raise ValidationError("signal", "give a signal, or company_id and signal_type")
        company = check_id(company_id, "company_id")
        signal_rules = rules_for(Signal)
        checked_type = signal_rules.value("signal_type", signal_type)
        level = signal_rules.value("severity", severity or Severity.MEDIUM)
        assert isinstance(level, Severity)
        allowed = [s for s in Severity if s.rank <= level.rank]
        stmt = (
            select(Alert)
            .where(
                Alert.is_active.is_(True),
                Alert.deleted_at.is_(None),
                or_(
                    func.cardinality(Alert.company_ids) == 0,
                    literal(company, BigInteger) == any_(Alert.company_ids),
                ),
                or_(
                    func.cardinality(Alert.signal_types) == 0,
                    literal(str(checked_type), Text) == any_(Alert.signal_types),
                ),
                or_(Alert.min_severity.is_(None), Alert.min_severity.in_(allowed)),
                or_(
                    Alert.last_triggered_at.is_(None),
                    Alert.last_triggered_at + Alert.cooldown_minutes * _ONE_MINUTE <= func.now(),
                ),
            )
            .order_by(Alert.id)
        )
        return await self._scalars(stmt)

    async def mark_triggered(self, alert_id: int) -> Alert:
        """Count one firing: ``trigger_count + 1`` and ``last_triggered_at = now()``.

        One atomic ``UPDATE ... RETURNING`` (no lost increments under concurrency); the
        returned object is refreshed.  The row's ``version`` is left alone: counting
        firings does not conflict with edits of the rule.

        Raises:
            NotFoundError: No such live alert.
        """
        check_id(alert_id, "alert_id")
        stmt = (
            update(Alert)
            .where(Alert.id == alert_id, Alert.deleted_at.is_(None))
            .values(trigger_count=Alert.trigger_count + 1, last_triggered_at=func.now())
            .returning(Alert)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        rows = await self._scalars(stmt)
        if not rows:
            raise NotFoundError("Alert", alert_id)
        return rows[0]
