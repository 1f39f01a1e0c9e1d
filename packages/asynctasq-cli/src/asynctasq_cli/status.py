"""What a running worker shows: a start-up banner and, on a terminal, a live status line."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from asynctasq.worker import Worker
from asynctasq_cli.output import literal, visible

log = logging.getLogger("asynctasq.cli")

EMBEDDED_NOTE = (
    "embedded default: no driver configured; choose one with --driver or ASYNCTASQ_DRIVER"
)


@dataclass(frozen=True, slots=True)
class Banner:
    """What the worker announces at start-up.

    Attributes:
        version: asynctasq-cli version.
        driver: The driver and its explicit settings (secrets masked).
        embedded_default: The driver is the embedded sqlite because none was configured.
        embedded_file: Its database file.
        queues: Queue names.
        concurrency: Most tasks at once.
        shutdown_timeout: Seconds running tasks get at shutdown.
        burst: Exit when the queues are empty.
        imports: Modules imported at start-up.
        allowed_roots: Directories task code may come from.
        event_loop: ``uvloop x.y`` or ``asyncio``.
        events: The worker publishes task and worker events.
        events_refused: Why events that were asked for are off (the driver keeps no event
            stream), or None.
        heartbeat_interval: Seconds between heartbeats in the worker registry; None when
            the driver keeps no registry.
    """

    version: str
    driver: str
    embedded_default: bool
    queues: tuple[str, ...]
    concurrency: int
    shutdown_timeout: float
    burst: bool
    imports: tuple[str, ...]
    allowed_roots: tuple[str, ...]
    event_loop: str
    events: bool = False
    events_refused: str | None = None
    heartbeat_interval: float | None = None
    embedded_file: str | None = None  # no setting names it: a worker elsewhere opens another

    def driver_line(self) -> str:
        """The driver, with the embedded-default note (and file) when it applies."""
        if not self.embedded_default:
            return self.driver
        where = f"; file {self.embedded_file}" if self.embedded_file else ""
        return f"{self.driver} ({EMBEDDED_NOTE}{where})"

    def mode_line(self) -> str:
        """Concurrency, shutdown deadline and mode in one line."""
        mode = "burst (exit when the queues are empty)" if self.burst else "until stopped"
        return (
            f"{self.concurrency} · shutdown timeout {self.shutdown_timeout:g} s · {mode}"
            f" · {self.event_loop}"
        )

    def events_line(self) -> str:
        """``on``, ``off``, or ``off (why)`` when they were asked for."""
        if self.events:
            return "on"
        return f"off ({self.events_refused})" if self.events_refused else "off"

    def render(self, console: Console) -> None:
        """Print the banner on a terminal (settings, names and paths shown literally)."""
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan")
        table.add_column()
        table.add_row("driver", literal(self.driver_line()))
        table.add_row("queues", literal(", ".join(self.queues)))
        table.add_row("concurrency", literal(self.mode_line()))
        table.add_row("task code", literal(", ".join(self.allowed_roots)))
        if self.imports:
            table.add_row("imported", literal(", ".join(self.imports)))
        table.add_row("events", literal(self.events_line()))
        if self.heartbeat_interval is not None:
            table.add_row("heartbeat", f"every {self.heartbeat_interval:g} s")
        console.print(
            Text.assemble(
                ("AsyncTasQ worker ", "bold"),
                (visible(self.version), "bold green"),
                f" · pid {os.getpid()}",
            )
        )
        console.print(table)

    def log(self) -> None:
        """Announce the start as one log record (plain or JSON logs)."""
        log.info(
            "asynctasq worker %s starting: driver %s; queues %s; concurrency %s; task code from %s"
            "; events %s",
            self.version,
            self.driver_line(),
            ", ".join(self.queues),
            self.mode_line(),
            ", ".join(self.allowed_roots),
            self.events_line(),
            extra={
                "event": "worker_started",
                "version": self.version,
                "driver": self.driver,
                "embedded_default": self.embedded_default,
                "queues": list(self.queues),
                "concurrency": self.concurrency,
                "shutdown_timeout": self.shutdown_timeout,
                "allowed_roots": list(self.allowed_roots),
                "burst": self.burst,
                "events": self.events,
                "heartbeat_interval": self.heartbeat_interval,
                "pid": os.getpid(),
            },
        )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class StatusLine:
    """A one-line view of a worker's counters, re-rendered on every refresh of `rich.Live`.

    Args:
        worker: The worker to show.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        """The current line: state, running, processed, retried, dead, uptime."""
        worker, stats = self.worker, self.worker.stats
        stopping = getattr(worker, "_stopping", False)
        state = ("stopping", "yellow") if stopping else ("working", "green")
        return Text.assemble(
            ("● ", state[1]),
            (f"{state[0]:<8}", f"bold {state[1]}"),
            " running ",
            (f"{worker.running}/{worker.concurrency}", "bold"),
            " · processed ",
            (f"{stats.processed:,}", "bold"),
            " · retried ",
            (f"{stats.retried:,}", "bold yellow" if stats.retried else "bold"),
            " · dead ",
            (f"{stats.dead_lettered:,}", "bold red" if stats.dead_lettered else "bold"),
            f" · up {_duration(time.monotonic() - self.started)}",
        )


def summary(worker: Worker) -> str:
    """The counters at exit, as one sentence."""
    s = worker.stats
    return (
        f"processed {s.processed}, succeeded {s.succeeded}, retried {s.retried}, "
        f"dead-lettered {s.dead_lettered}, given back {s.released}"
    )


__all__ = ["EMBEDDED_NOTE", "Banner", "StatusLine", "summary"]
