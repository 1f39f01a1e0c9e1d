"""The one place that reaches into aiobotocore's and aiohttp's private attributes.

Neither library offers a public way to mark a client's HTTP connections closed once the
event loop they belong to has ended (closing them the usual way needs that loop), and
without it aiohttp warns about an unclosed session when the client is garbage collected.
"""

from __future__ import annotations

import asyncio
import contextlib


def abandon_client(client: object, loop: asyncio.AbstractEventLoop | None) -> None:
    """Mark the HTTP connections of a client whose event loop has ended as closed.

    They cannot be closed the usual way (that needs their loop); without this, aiohttp
    warns about an unclosed session when the client is garbage collected.
    """
    if loop is None or not loop.is_closed():
        return
    with contextlib.suppress(Exception):  # private attributes of aiobotocore and aiohttp
        sessions = client._endpoint.http_session._sessions.values()  # type: ignore[attr-defined]
        for session in sessions:
            session._connector._close()  # with its loop closed it only flags itself closed


__all__ = ["abandon_client"]
