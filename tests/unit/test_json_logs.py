"""``JsonLogFormatter``: one JSON object per record, with the caller's ``extra`` fields."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from biotech_ma_db.json_logs import JsonLogFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "biotech_ma_db.unit_of_work", logging.DEBUG, __file__, 1, "unit %s %s", ("ab", "ok"), None
    )
    record.__dict__.update(extra)
    return record


def test_fields_message_and_extras() -> None:
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    line = JsonLogFormatter().format(_record(unit_id="ab", attempt=2, client_id=None, at=when))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "unit ab ok"
    assert entry["level"] == "DEBUG"
    assert entry["logger"] == "biotech_ma_db.unit_of_work"
    assert entry["time"].endswith("+00:00")
    assert entry["unit_id"] == "ab"
    assert entry["attempt"] == 2
    assert entry["client_id"] is None
    assert entry["at"] == str(when)  # not JSON: written as str()
    assert {"args", "msg", "levelno", "pathname", "exception"}.isdisjoint(entry)


def test_exception_is_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record()
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonLogFormatter().format(record))
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: boom" in entry["exception"]
