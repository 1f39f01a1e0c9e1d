"""aiormq logs "error when creating transport" at ERROR, then raises the same error.

Whoever connects reports that error already (the driver's one-line message, or aio-pika's
reconnect warnings), so the command line showed a stray line before its own clean one, and a
worker in an outage logged each failed try twice. `install` drops that one record; aiormq's
others are left as they are.
"""

from __future__ import annotations

import logging

_LOGGER = "aiormq.connection"
_DUPLICATE = "error when creating transport"


class DropTransportErrors(logging.Filter):
    """Drops aiormq's record of a failed connect, which its caller reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_DUPLICATE)


def install() -> None:
    """Add the filter to aiormq's connection logger, once per process."""
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(f, DropTransportErrors) for f in logger.filters):
        logger.addFilter(DropTransportErrors())
