"""A logging formatter that writes one JSON object per record, structured fields included.

The library's records carry their facts as fields (logging's ``extra``): a unit of work's
``unit_id``, ``client_id``, ``read_only``, ``attempt``, ``duration_ms`` and ``outcome``
on ``biotech_ma_db.unit_of_work`` (DEBUG, one per unit), a retry's ``attempt``,
``attempts``, ``delay_ms``, ``outcome`` and ``sqlstate`` on ``biotech_ma_db.retry``
(INFO).  Any formatter that emits extra fields shows them (python-json-logger,
structlog's ``ProcessorFormatter``); this one needs nothing installed::

    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.getLogger("biotech_ma_db").addHandler(handler)

Bound statement parameters are in none of the library's records, so they are in none of
these lines either.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Final

__all__ = ["JsonLogFormatter"]

# Everything a plain LogRecord carries, so that only the caller's ``extra`` is added.
_STANDARD_FIELDS: Final = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}


class JsonLogFormatter(logging.Formatter):
    """Formats a record as one line of JSON.

    Keys: ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``,
    every field given as ``extra``, and ``exception`` / ``stack`` when the record has them.
    Values JSON cannot hold are written as their ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
