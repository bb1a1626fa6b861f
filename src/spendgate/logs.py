"""The log output of ``spendgate serve``: one handler on stderr, as text for people or as one
JSON object a line for log shippers, shared by spendgate's loggers and uvicorn's.

Loggers: ``spendgate.serve`` (the start-up block), ``spendgate.providers`` (health and circuit
changes), ``spendgate.journal`` (database writes), ``spendgate.audit`` (changes made through
the admin API), ``spendgate.access`` (one line per proxied request, opt-in), and
``spendgate.admin``, ``spendgate.records``, ``spendgate.housekeeping``. Other libraries log
at WARNING and above only.

A record may carry structured fields, ``extra={"fields": {...}}``: the JSON format adds them
to its object; the text format shows the message alone, which says the same in words.
"""

from __future__ import annotations

import logging
import logging.config
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import orjson

__all__ = [
    "FIELDS",
    "JsonFormatter",
    "LogFormat",
    "LogLevel",
    "TextFormatter",
    "configure",
]


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    TEXT = "text"  # for people
    JSON = "json"  # one object a line, for log shippers


FIELDS: Final = "fields"  # the ``extra`` key of a record's structured fields

# Loggers that write at INFO whatever --log-level says: rare, and never to be lost silently
# (the audit trail of admin changes).
_ALWAYS_INFO = ("spendgate.audit",)
# uvicorn logs its server lines (startup, shutdown, bind errors) under "uvicorn.error".
_SHOWN_NAMES = {"uvicorn.error": "uvicorn"}


def _time(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _name(record: logging.LogRecord) -> str:
    return _SHOWN_NAMES.get(record.name, record.name)


class TextFormatter(logging.Formatter):
    """``2026-12-03T23:10:05.123Z WARNING spendgate.providers: message`` (UTC time)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record.created)} {record.levelname} {_name(record)}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC), ``level``, ``logger``, ``message``, then the
    record's structured fields and, for an error, ``exception`` (the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _time(record.created),
            "level": record.levelname,
            "logger": _name(record),
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            for name, value in fields.items():
                entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def configure(
    level: LogLevel = LogLevel.INFO,
    log_format: LogFormat = LogFormat.TEXT,
    *,
    access_log: bool = False,
) -> dict[str, Any]:
    """Send every log line to stderr in ``log_format``: spendgate's at ``level`` (the audit
    trail at INFO at least, the access log at INFO when ``access_log``, else never), uvicorn's
    at ``level``, other libraries' at WARNING at least. Returns the ``logging.config``
    dictionary applied, for ``uvicorn.run(log_config=...)``, which applies it again."""
    chosen = level.upper()
    formatter = TextFormatter if log_format is LogFormat.TEXT else JsonFormatter
    loggers: dict[str, dict[str, Any]] = {
        name: {"level": chosen, "handlers": [], "propagate": True}
        for name in ("spendgate", "uvicorn", "uvicorn.error")
    }
    loggers["uvicorn.access"] = {"level": "WARNING", "handlers": [], "propagate": True}
    for name in _ALWAYS_INFO:
        loggers[name] = {"level": min(chosen, "INFO", key=logging.getLevelName)}
    # Its lines are INFO: CRITICAL keeps it silent, and the proxy does no work for it.
    loggers["spendgate.access"] = {"level": "INFO" if access_log else "CRITICAL"}
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"spendgate": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "spendgate",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": max(chosen, "WARNING", key=logging.getLevelName), "handlers": ["stderr"]},
        "loggers": loggers,
    }
    logging.config.dictConfig(config)
    return config
