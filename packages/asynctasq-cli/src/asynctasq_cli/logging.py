"""Log set-up for the worker: rich on a terminal, plain lines otherwise, or JSON lines.

``--log-format text`` on a terminal uses Rich's handler on the same console as the live
status line (log lines scroll above it); off a terminal it writes one plain line per record.
``--log-format json`` writes one JSON object per line, for log collectors.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rich.console import Console
from rich.logging import RichHandler

from asynctasq_cli.redact import redact_text

LogFormat = Literal["text", "json"]
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else was passed with `extra=` and is data.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as a JSON line."""
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRS and not key.startswith("_")
        )
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class _RedactingFilter(logging.Filter):
    """Masks passwords in URLs that drivers or libraries put in log messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def parse_level(level: str) -> int:
    """The `logging` level for a name (``debug`` ... ``critical``), case-insensitive.

    Raises:
        ValueError: an unknown name.
    """
    name = level.strip().lower()
    if name not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    return int(getattr(logging, name.upper()))


@dataclass(slots=True)
class LogSetup:
    """The handler `configure_logging` installed, and what it replaced."""

    handler: logging.Handler
    previous_handlers: list[logging.Handler]
    previous_level: int

    def restore(self) -> None:
        """Put back the handlers and level in place before (the CLI also runs in tests)."""
        root = logging.getLogger()
        root.removeHandler(self.handler)
        self.handler.close()
        for handler in self.previous_handlers:
            root.addHandler(handler)
        root.setLevel(self.previous_level)


def configure_logging(level: str, log_format: LogFormat, console: Console) -> LogSetup:
    """Send every log record at `level` or above to `console`'s stream in `log_format`.

    The root logger's handlers are replaced (the worker owns its process) until
    `LogSetup.restore`.

    Args:
        level: Level name, ``debug`` to ``critical``.
        log_format: ``text`` or ``json``.
        console: The console the worker writes to (stderr); rich output when it is a
            terminal and the format is text.

    Returns:
        What was installed, to undo it.

    Raises:
        ValueError: an unknown level name.
    """
    numeric = parse_level(level)
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(JsonFormatter())
    elif console.is_terminal:
        handler = RichHandler(
            console=console, show_path=False, rich_tracebacks=True, log_time_format="[%X]"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    setup = LogSetup(handler, list(root.handlers), root.level)
    for old in setup.previous_handlers:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    return setup


__all__ = [
    "LOG_LEVELS",
    "JsonFormatter",
    "LogFormat",
    "LogSetup",
    "configure_logging",
    "parse_level",
]
