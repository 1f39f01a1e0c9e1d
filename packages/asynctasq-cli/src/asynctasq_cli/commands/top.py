"""``asynctasq top``: a live view of queues, workers and throughput, refreshed in place.

Each refresh reads the queues' depths (`Driver.stats`) and, on drivers with a worker
registry, the live workers' records. Throughput is what the workers took per second between
two refreshes, from their ``processed`` counters (renewed with each heartbeat, so the rate
moves in heartbeat-sized steps); a worker that appears or leaves between two refreshes adds
nothing to the rate rather than a jump.

Quits on ``q`` or Ctrl-C and restores the terminal. Without a terminal (a pipe, a script) it
refreshes until interrupted, or ``--iterations`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from asynctasq.drivers.base import Driver, QueueStats, WorkerRegistry
from asynctasq.lifecycle import WorkerInfo, list_workers
from asynctasq.runner import run
from asynctasq_cli import session
from asynctasq_cli.commands.queues import stats_table
from asynctasq_cli.commands.workers import workers_table
from asynctasq_cli.output import literal, reporting_errors, stdout
from asynctasq_cli.settings import (
    ConnectionOptions,
    load_config,
    takes_connection,
)

HISTORY = 60
"""Throughput samples kept for the sparkline."""
MAX_QUEUES_SHOWN = 50
"""Queues listed (the busiest first); a broker may hold thousands of names."""
MAX_QUEUES_READ = 1000
"""Queues whose depths a refresh reads (the first by name); the busiest of them are shown.
Anyone who can write to the broker can register names: one refresh must stay bounded."""
MAX_WORKERS_SHOWN = 50
"""Workers listed (by start time); anyone who can write to the broker can add records."""
_BARS = " ▁▂▃▄▅▆▇█"


@dataclass(slots=True)
class Throughput:
    """Tasks per second across the workers, from their ``processed`` counters."""

    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    _last: dict[str, int] = field(default_factory=dict)
    _last_at: float | None = None

    def add(self, workers: Sequence[WorkerInfo], at: float) -> float | None:
        """Record a refresh; the rate since the previous one (None for the first)."""
        counts = {w.worker_id: w.processed for w in workers}
        rate = None
        if self._last_at is not None and at > self._last_at:
            # Only workers seen both times count: a newcomer's counter started before we saw
            # it, and one that left took its last tasks with it.
            taken = sum(
                max(0, n - self._last[wid]) for wid, n in counts.items() if wid in self._last
            )
            rate = taken / (at - self._last_at)
            self.history.append(rate)
        self._last, self._last_at = counts, at
        return rate

    def sparkline(self) -> str:
        """The rates kept, as bars scaled to the highest."""
        if not self.history:
            return ""
        top = max(self.history) or 1.0
        return "".join(_BARS[round(r / top * (len(_BARS) - 1))] for r in self.history)


@dataclass(slots=True)
class Snapshot:
    """What one refresh read."""

    queues: list[QueueStats]
    workers: list[WorkerInfo] | None
    """None when the driver keeps no worker registry."""
    total_queues: int | None = None
    """How many queues exist, where more than `queues` (only some were read)."""


async def read_snapshot(driver: Driver, only: Sequence[str]) -> Snapshot:
    """Queue depths (busiest first) and the live workers, read now."""
    names = list(only) or sorted(await driver.queue_names())
    total = len(names) if len(names) > MAX_QUEUES_READ else None
    names = names[:MAX_QUEUES_READ]
    stats = await driver.stats(names) if names else []
    stats.sort(key=lambda s: (-(s.ready + s.delayed + s.in_flight + s.dead), s.queue))
    workers = await list_workers(driver=driver) if isinstance(driver, WorkerRegistry) else None
    return Snapshot(queues=stats, workers=workers, total_queues=total)


def render(snapshot: Snapshot, throughput: Throughput, described: str) -> RenderableType:
    """The whole screen: a header, throughput, queues and workers."""
    parts: list[RenderableType] = []
    header = Text(literal(f"asynctasq top · {described}"), style="bold")
    header.append(f" · {time.strftime('%H:%M:%S')} · q to quit", style="dim")
    parts.append(header)
    if snapshot.workers is None:
        parts.append(Text("throughput: this driver keeps no worker registry", style="dim"))
    else:
        rate = throughput.history[-1] if throughput.history else None
        line = Text("throughput: ")
        line.append("measuring..." if rate is None else f"{rate:,.1f} tasks/s", style="bold")
        line.append(f"  {throughput.sparkline()}", style="green")
        parts.append(line)
    shown = snapshot.queues[:MAX_QUEUES_SHOWN]
    if shown:
        title = "Queues"
        if snapshot.total_queues is not None:
            title += (
                f" (the {len(shown)} busiest of the first {len(snapshot.queues):,} by name, "
                f"of {snapshot.total_queues:,})"
            )
        elif len(snapshot.queues) > len(shown):
            title += f" (the {len(shown)} busiest of {len(snapshot.queues)})"
        parts.append(stats_table(shown, title))
    else:
        parts.append(Text("No queues yet.", style="dim"))
    if snapshot.workers:
        workers = snapshot.workers[:MAX_WORKERS_SHOWN]
        title = f"Live workers ({len(snapshot.workers):,})"
        if len(snapshot.workers) > len(workers):
            title += f", the first {len(workers)} by start time"
        parts.append(workers_table(workers, title))
    elif snapshot.workers is not None:
        parts.append(Text("No live workers.", style="dim"))
    return Group(*parts)


@contextlib.contextmanager
def keypresses(on_quit: Any) -> Iterator[None]:
    """Call `on_quit` on ``q``/``Q`` typed at the terminal, and on SIGINT/SIGTERM; restore
    the terminal's mode afterwards. Without a terminal on stdin only the signals count."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_quit)
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    saved: Any = None
    if fd is not None:
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        # cbreak: keys arrive one at a time, unechoed; Ctrl-C still raises SIGINT.
        tty.setcbreak(fd)

        def on_key() -> None:
            typed = os.read(fd, 64)
            if b"q" in typed.lower() or not typed:
                on_quit()

        loop.add_reader(fd, on_key)
    try:
        yield
    finally:
        if fd is not None:
            import termios

            loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _top(
    connection: ConnectionOptions, queues: Sequence[str], interval: float, iterations: int | None
) -> None:
    loaded = load_config(connection)
    described = session.describe_driver(loaded)
    console = stdout()
    throughput = Throughput()
    quit_now = asyncio.Event()
    async with session.open_driver(loaded) as driver:
        with (
            keypresses(quit_now.set),
            Live(console=console, screen=console.is_terminal, auto_refresh=False) as live,
        ):
            done = 0
            while not quit_now.is_set():
                snapshot = await read_snapshot(driver, queues)
                if snapshot.workers is not None:
                    throughput.add(snapshot.workers, time.monotonic())
                live.update(render(snapshot, throughput, described), refresh=True)
                done += 1
                if iterations is not None and done >= iterations:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(quit_now.wait(), interval)


def register(app: typer.Typer) -> None:
    """Add ``top`` to `app`."""

    @app.command(rich_help_panel="Inspect")
    @takes_connection
    def top(
        queue: Annotated[
            list[str] | None,
            typer.Option("--queue", "-q", help="Show only this queue. Repeatable."),
        ] = None,
        interval: Annotated[
            float, typer.Option("--interval", "-n", min=0.1, help="Seconds between refreshes.")
        ] = 2.0,
        iterations: Annotated[
            int | None,
            typer.Option("--iterations", min=1, help="Stop after this many refreshes."),
        ] = None,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Watch queues, live workers and throughput, refreshed in place (q or Ctrl-C quits)."""
        with reporting_errors():
            run(_top(connection, tuple(queue or ()), interval, iterations))


__all__ = ["Snapshot", "Throughput", "read_snapshot", "register", "render"]
