"""asyncpg's pool logs a full traceback each time it fails to reopen a connection.

During a database outage that is a traceback every 1 to 60 s (asyncpg backs off) per worker
process, burying the worker's own one-line reports of the same outage. `install` turns that
record into one line that still names the error; every other record of asyncpg is left as it
is.
"""

from __future__ import annotations

import logging

_LOGGER = "asyncpg.pool"
_NOISY = "Failed to restore the pool connection floor"


class OneLineRestoreFailures(logging.Filter):
    """Drops the traceback of asyncpg's "failed to restore the pool connection floor"."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith(_NOISY):
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    """Add the filter to asyncpg's pool logger, once per process."""
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(f, OneLineRestoreFailures) for f in logger.filters):
        logger.addFilter(OneLineRestoreFailures())
