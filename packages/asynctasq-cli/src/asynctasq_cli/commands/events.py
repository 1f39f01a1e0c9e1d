"""``asynctasq events``: the event stream as JSON lines, until interrupted.

One event per line, flushed as it arrives, so the output can be piped into ``jq``, a log
shipper or a script. JSON escapes every control character in the text it carries (error
messages, progress notes), so nothing a task wrote can reach the terminal raw.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

import asynctasq
from asynctasq.drivers.base import EventLog
from asynctasq.lifecycle import Event, EventType
from asynctasq.runner import run
from asynctasq_cli import session
from asynctasq_cli.capability import streaming
from asynctasq_cli.output import literal, reporting_errors, stderr
from asynctasq_cli.settings import (
    ConnectionOptions,
    load_config,
    takes_connection,
)


def event_line(event: Event) -> str:
    """`event` as one line of JSON (non-ASCII and control characters escaped)."""
    return json.dumps(event.as_dict(), default=str, ensure_ascii=True)


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()  # a reader at the end of a pipe sees each event as it happens


def _silence_stdout() -> None:
    """Point stdout at /dev/null: its reader went away (``asynctasq events | head``), and the
    interpreter's last flush must not report the broken pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


async def follow(
    connection: ConnectionOptions, types: Sequence[EventType] | None, from_start: bool
) -> None:
    """Print the events of the configured driver until cancelled."""
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        console = stderr()
        if console.is_terminal:
            console.print(
                literal(
                    f"Following events on {session.describe_driver(loaded)} (Ctrl-C to stop). "
                    "Workers publish them when events are on: asynctasq worker --events, "
                    "or ASYNCTASQ_EVENTS_ENABLED=true."
                ),
                style="dim",
            )
        stream = asynctasq.events.subscribe(driver=driver, types=types, from_start=from_start)
        async for event in streaming(driver, EventLog, stream):
            _write(event_line(event))


def register(app: typer.Typer) -> None:
    """Add ``events`` to `app`."""

    @app.command(rich_help_panel="Inspect")
    @takes_connection
    def events(
        types: Annotated[
            list[EventType] | None,
            typer.Option(
                "--type",
                "-t",
                help="Only events of this type (repeatable).",
                show_default=False,
            ),
        ] = None,
        from_start: Annotated[
            bool,
            typer.Option(
                "--from-start",
                help="Begin with the oldest event still kept (events.retention, an hour by "
                "default) instead of the next new one.",
            ),
        ] = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Print task and worker events as JSON lines as they happen, until Ctrl-C.

        Workers publish events when started with --events (or events.enabled).
        Example: asynctasq events --type task-failed --type task-retried
        """
        with reporting_errors():
            try:
                run(follow(connection, types, from_start))
            except KeyboardInterrupt:
                raise typer.Exit(0) from None
            except BrokenPipeError:
                _silence_stdout()
                raise typer.Exit(0) from None


__all__ = ["event_line", "follow", "register"]
