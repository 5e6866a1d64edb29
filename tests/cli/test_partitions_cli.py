"""``biotech-ma-db partitions ensure|list|detach`` against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from sqlalchemy import text

from biotech_ma_db import Database
from biotech_ma_db.partitions import Month

from .test_cli import invoke, one_line_error, url_of


async def _run(args: list[str]) -> tuple[int, str, str]:
    result = await asyncio.to_thread(invoke, args)
    return result.exit_code, result.stdout, result.stderr


class TestPartitionsCommands:
    """Create ahead, list, detach, with ``--url`` like every connecting command."""

    async def test_ensure_list_detach(self, fresh_database: Database) -> None:
        url = url_of(fresh_database)
        this_month = Month.of(dt.datetime.now(dt.UTC).date())
        code, out, err = await _run(["partitions", "ensure", "--months-ahead", "5", "--url", url])
        assert code == 0, err
        # The migration made this month and the three after it; ensure adds the last two.
        made = [this_month.plus(ahead).partition_name("signals") for ahead in (4, 5)]
        assert out.strip() == f"created {', '.join(made)}"
        code, out, _ = await _run(["partitions", "ensure", "--months-ahead", "5", "--url", url])
        assert code == 0
        assert out.startswith("nothing to create")

        async with fresh_database.engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE signals_y2020m01 PARTITION OF signals"
                    " FOR VALUES FROM ('2020-01-01 00:00:00+00') TO ('2020-02-01 00:00:00+00')"
                )
            )
        code, out, _ = await _run(["partitions", "list", "--url", url, "--json"])
        assert code == 0
        listed = json.loads(out)
        assert listed[0]["name"] == "signals_y2020m01"
        assert listed[-1] == {**listed[-1], "name": "signals_default", "is_default": True}
        code, out, _ = await _run(["partitions", "list", "--url", url])
        assert "signals_default" in out
        assert "DEFAULT" in out

        args = ["partitions", "detach", "--older-than", "2020-02-01", "--drop", "--url", url]
        code, out, err = await _run(args)
        assert code == 0, err
        assert out.strip() == "dropped signals_y2020m01"
        code, out, _ = await _run(args)
        assert out.strip() == "nothing to detach: no month of signals ends on or before 2020-02-01"

    async def test_bad_arguments_exit_2(self, fresh_database: Database) -> None:
        url = url_of(fresh_database)
        for args, message in [
            (
                ["partitions", "ensure", "--months-ahead", "121"],
                "error: --months-ahead must be between 0 and 120 (got 121)",
            ),
            (
                ["partitions", "detach", "--older-than", "01/02/2020"],
                "error: --older-than must be a date as YYYY-MM-DD (got '01/02/2020')",
            ),
            (
                ["partitions", "detach", "--older-than", "2999-01-01"],
                "error: --older-than must not be in the future (got 2999-01-01)",
            ),
        ]:
            result = await asyncio.to_thread(invoke, [*args, "--url", url])
            assert result.exit_code == 2, result.output
            assert one_line_error(result) == message

    async def test_unknown_table_exits_1(self, fresh_database: Database) -> None:
        result = await asyncio.to_thread(
            invoke, ["partitions", "list", "--table", "companies", "--url", url_of(fresh_database)]
        )
        assert result.exit_code == 1
        assert "must be a partitioned table: signals" in one_line_error(result)
