"""``ReportRepository``: report metadata by type and period, and distribution."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import ClassVar

from sqlalchemy import select

from biotech_ma_db.models import Report, ReportStatus
from biotech_ma_db.repositories.base import Repository
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
    check_limit,
)

__all__ = ["ReportRepository"]


class ReportRepository(Repository[Report]):
    """Generated reports (soft-deletable)."""

    model = Report
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": Report.id,
        "report_date": Report.report_date,
        "report_type": Report.report_type,
        "title": Report.title,
        "created_at": Report.created_at,
        "distributed_at": Report.distributed_at,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "status": Report.status,
        "storage_backend": Report.storage_backend,
    }
    default_order: ClassVar[SortSpec] = "-report_date"

    async def get_by_type(
        self,
        report_type: str,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
    ) -> builtins.list[Report]:
        """Live reports of one type dated within ``start_date``..``end_date``, newest first."""
        criteria = [Report.report_type == self.rules.value("report_type", report_type)]
        if start_date is not None:
            criteria.append(Report.report_date >= self.rules.value("report_date", start_date))
        if end_date is not None:
            criteria.append(Report.report_date <= self.rules.value("report_date", end_date))
        stmt = (
            select(Report)
            .where(*criteria, Report.deleted_at.is_(None))
            .order_by(Report.report_date.desc(), Report.id.desc())
            .limit(check_limit(limit))
        )
        return await self._scalars(stmt)

    async def get_latest(self, report_type: str) -> Report | None:
        """The most recent live report of ``report_type``, or ``None``."""
        rows = await self.get_by_type(report_type, limit=1)
        return rows[0] if rows else None

    async def mark_distributed(
        self,
        report_id: int,
        recipients: Sequence[str] | None = None,
        *,
        distributed_at: dt.datetime | None = None,
    ) -> Report:
        """Record that the report was sent: status ``distributed``, time and recipients.

        Raises:
            NotFoundError: No such live report.
        """
        moment = distributed_at or dt.datetime.now(dt.UTC)
        status = ReportStatus.DISTRIBUTED
        if recipients is None:
            return await self.update(report_id, status=status, distributed_at=moment)
        return await self.update(
            report_id, status=status, distributed_at=moment, recipients=recipients
        )
