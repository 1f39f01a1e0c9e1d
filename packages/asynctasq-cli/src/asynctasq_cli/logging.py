"""Log set-up for the worker: rich on a terminal, plain lines otherwise, or JSON lines.

``--log-format text`` on a terminal uses Rich's handler on the same console as the live
status line (log lines scroll above it); off a terminal it writes one plain line per record.
``--log-format json`` writes one JSON object per line, for log collectors.

Every record is bounded and masked before any handler formats it: its message, traceback
and stack are cut to `MAX_MESSAGE_CHARS` each (`TERMINAL_MESSAGE_CHARS` on a terminal),
with a marker saying how much was cut, then passwords in them are masked
(`asynctasq.redaction`). A task's error message is whatever the task raised, megabytes if
need be; the worker's event loop must not spend seconds on one log line.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rich.console import Console
from rich.logging import RichHandler

from asynctasq.redaction import redact_text

LogFormat = Literal["text", "json"]
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

MAX_MESSAGE_CHARS = 64 * 1024
"""The most characters of a record's message, of its traceback and of its stack a log line
carries; the rest is cut, and a marker says how many characters were."""
TERMINAL_MESSAGE_CHARS = 8 * 1024
"""The same bound on a terminal, where Rich lays out and highlights text at about 100 KB a
second: a longer message would hold the worker's event loop for seconds."""

# A secret the cut falls in must still be seen whole by the redaction: the cut moves to a
# space up to this far away (forwards, else backwards) rather than split a URL or a
# key=value before its end.
_CUT_SLACK = 4 * 1024
_SPACE = re.compile(r"\s")
_TRACEBACKS = logging.Formatter()

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
        for key, value in doc.items():
            if isinstance(value, str) and key != "message":
                doc[key] = bounded(value)
        # As `logging.Formatter` does: a traceback formatted once (and bounded by the
        # handler's filter) is reused.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, default=str)


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` safe to log: cut to about `limit` characters, then its passwords masked.

    A cut text ends with a marker saying how many characters were cut. The cut moves on
    to the next whitespace within 4 KiB (else back to the previous one), so a URL or a
    ``key=value`` is not split before its secret ends; only a run of more than 4 KiB
    without whitespace on either side is cut inside.

    Args:
        text: Any text, of any length.
        limit: The number of characters to keep (give or take the move to a space).

    Returns:
        The bounded, masked text.
    """
    if len(text) <= limit:
        return redact_text(text)
    space = _SPACE.search(text, limit, limit + _CUT_SLACK)
    if space is not None:
        end = space.start()
    else:
        start = max(0, limit - _CUT_SLACK)
        before = max(text.rfind(char, start, limit) for char in " \t\n\r")
        end = before if before > 0 else limit
    return f"{redact_text(text[:end])} [... {len(text) - end:,} more characters cut]"


class _RedactingFilter(logging.Filter):
    """Bounds and masks what a record prints: message, traceback, stack (see `bounded`)."""

    def __init__(self, limit: int = MAX_MESSAGE_CHARS) -> None:
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = bounded(message, self.limit)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
            record.exc_text = bounded(text, self.limit)
            if record.exc_text != text:
                # Handlers that render the exception object themselves (Rich's tracebacks)
                # would show it whole: leave them only the bounded, masked text.
                record.exc_info = None
        elif record.exc_text:
            record.exc_text = bounded(record.exc_text, self.limit)
        if record.stack_info:
            record.stack_info = bounded(record.stack_info, self.limit)
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
    limit = MAX_MESSAGE_CHARS
    if log_format == "json":
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(JsonFormatter())
    elif console.is_terminal:
        handler = RichHandler(
            console=console, show_path=False, rich_tracebacks=True, log_time_format="[%X]"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        limit = TERMINAL_MESSAGE_CHARS
    else:
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(_RedactingFilter(limit))
    root = logging.getLogger()
    setup = LogSetup(handler, list(root.handlers), root.level)
    for old in setup.previous_handlers:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    return setup


__all__ = [
    "LOG_LEVELS",
    "MAX_MESSAGE_CHARS",
    "TERMINAL_MESSAGE_CHARS",
    "JsonFormatter",
    "LogFormat",
    "LogSetup",
    "bounded",
    "configure_logging",
    "parse_level",
]
