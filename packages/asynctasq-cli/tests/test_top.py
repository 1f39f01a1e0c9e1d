"""``asynctasq top``: the throughput arithmetic, the screen, and the real command in a
pseudo-terminal next to a real worker (refreshes in place, quits on ``q`` and on Ctrl-C, and
gives the terminal back as it found it)."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import cli_lifecycle_tasks as lt
import pytest
from cli_lifecycle_testing import dispatch
from cli_testing import TASKS_DIR, requires_sqlite
from rich.console import Console

from asynctasq.drivers.base import OutgoingMessage, QueueStats
from asynctasq.lifecycle import WorkerInfo
from asynctasq.testing import MemoryDriver
from asynctasq_cli.commands.top import (
    MAX_QUEUES_READ,
    Snapshot,
    Throughput,
    read_snapshot,
    render,
)

SCRIPT = Path(sys.executable).with_name("asynctasq")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def worker_info(worker_id: str, processed: int) -> WorkerInfo:
    now = datetime.now(UTC)
    return WorkerInfo(worker_id, "h", 1, ("q",), 4, "0", now, now, processed=processed)


def test_throughput_counts_only_workers_seen_twice() -> None:
    rates = Throughput()
    assert rates.add([worker_info("a", 10)], at=100.0) is None
    # a took 20 in 2 s; b is new (its 500 happened before we saw it): 10/s, not 260/s.
    assert rates.add([worker_info("a", 30), worker_info("b", 500)], at=102.0) == 10.0
    # a left; b took 40 in 1 s.
    assert rates.add([worker_info("b", 540)], at=103.0) == 40.0
    # A restarted worker's counter going back is no negative rate.
    assert rates.add([worker_info("b", 5)], at=104.0) == 0.0
    assert list(rates.history) == [10.0, 40.0, 0.0]
    assert rates.sparkline() == "▂█ "


def test_the_screen_shows_untrusted_names_literally() -> None:
    hostile = "[bold red]q[/]\x1b[2J"
    snapshot = Snapshot(
        queues=[QueueStats(hostile, ready=3, dead=1)],
        workers=[worker_info("w[/]1", 7)],
    )
    rates = Throughput()
    rates.add(snapshot.workers or [], at=1.0)
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=False).print(render(snapshot, rates, "x"))
    text = out.getvalue()
    assert "[bold red]q[/]" in text and "\x1b" not in text
    assert "w[/]1" in text and "Live workers (1)" in text and "measuring..." in text


def test_the_screen_stays_bounded_whatever_the_registry_holds() -> None:
    # Anyone who can write to the broker can add worker records, each naming many queues.
    now = datetime.now(UTC)
    many = [
        WorkerInfo(f"w{n}", "h", 1, tuple(f"q{i}" for i in range(5000)), 4, "0", now, now)
        for n in range(2000)
    ]
    out = io.StringIO()
    Console(file=out, width=200).print(render(Snapshot(queues=[], workers=many), Throughput(), "x"))
    text = out.getvalue()
    assert "Live workers (2,000), the first 50 by start time" in text
    assert "w49" in text and "w50" not in text
    assert "(+4,980 more)" in text and "q20," not in text
    assert len(text) < 200_000


async def test_one_refresh_reads_the_depths_of_a_bounded_number_of_queues() -> None:
    """Anyone who can write to the broker can register queue names: 100,000 of them made
    each refresh take 5 s."""
    driver = MemoryDriver(namespace="top-many-queues")
    for i in range(MAX_QUEUES_READ + 200):
        await driver.enqueue(OutgoingMessage(f"t{i}", f"q{i:05d}", b"{}", visibility_timeout=30))
    asked: list[int] = []
    read = driver.stats

    async def stats(queues: Sequence[str]) -> list[QueueStats]:
        asked.append(len(queues))
        return await read(queues)

    driver.stats = stats  # type: ignore[method-assign]
    snapshot = await read_snapshot(driver, [])
    assert asked == [MAX_QUEUES_READ] and snapshot.total_queues == MAX_QUEUES_READ + 200
    out = io.StringIO()
    Console(file=out, width=200).print(render(snapshot, Throughput(), "memory"))
    assert "the 50 busiest of the first 1,000 by name, of 1,200" in " ".join(out.getvalue().split())


def test_a_driver_without_workers_shows_queues_only() -> None:
    out = io.StringIO()
    shown = render(Snapshot(queues=[], workers=None), Throughput(), "sqs")
    Console(file=out, width=120).print(shown)
    assert "keeps no worker registry" in out.getvalue() and "No queues yet." in out.getvalue()


# -- the real command in a pseudo-terminal --------------------------------------------------


class Terminal:
    """A child process on a pseudo-terminal: what it drew (ANSI codes removed) and keys."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd
        self.screen = b""
        self.status: int | None = None

    def read_until(self, pattern: bytes, timeout: float = 30.0) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, ANSI.sub(b"", self.screen))
            if found:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not drawn within {timeout} s: {self.screen!r}")
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    self.screen += os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    time.sleep(0.05)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                return os.waitstatus_to_exitcode(status)
            select.select([self.fd], [], [], 0.1)
            with suppress(OSError):
                self.screen += os.read(self.fd, 65536)
        raise AssertionError(f"top did not exit within {timeout} s")


@contextmanager
def on_a_terminal(args: list[str], cwd: Path) -> Iterator[Terminal]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
    env.update(TERM="xterm-256color", COLUMNS="160", LINES="50")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling tty
        os.chdir(cwd)
        os.execve(str(SCRIPT), [str(SCRIPT), *args], env)
    term = Terminal(pid, fd)
    try:
        yield term
    finally:
        if term.status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


@pytest.mark.slow
@requires_sqlite
def test_top_follows_a_real_worker_and_quits_on_q(tmp_path: Path, markers: Path) -> None:
    db = tmp_path / "queue.db"
    args = ["--driver", "sqlite", "-o", f"path={db}"]
    dispatch(db, *(lt.slow(str(markers), f"t{i}", 0.15) for i in range(40)))
    worker = subprocess.Popen(
        [
            *(str(SCRIPT), "worker", *args, "--import", "cli_lifecycle_tasks"),
            *("--allowed-root", str(TASKS_DIR), "-q", lt.QUEUE, "--concurrency", "2"),
            *("--heartbeat-interval", "0.2"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(TASKS_DIR)},
    )
    try:
        with on_a_terminal(["top", *args, "--interval", "0.3"], tmp_path) as term:
            term.read_until(re.escape(lt.QUEUE.encode()))
            term.read_until(rb"Live workers \(1\)")
            # Some refresh measures the worker taking tasks.
            term.read_until(rb"throughput: [0-9,]*[1-9][0-9,]*\.[0-9] tasks/s")
            term.type(b"q")
            assert term.wait() == 0
            # The terminal is handed back in the mode it had: line input, echo.
            mode = termios.tcgetattr(term.fd)
            assert mode[3] & termios.ICANON and mode[3] & termios.ECHO
    finally:
        worker.terminate()
        worker.wait(30)


@pytest.mark.slow
@requires_sqlite
def test_top_quits_on_ctrl_c(tmp_path: Path) -> None:
    args = ["--driver", "sqlite", "-o", f"path={tmp_path / 'queue.db'}"]
    with on_a_terminal(["top", *args, "--interval", "0.3"], tmp_path) as term:
        term.read_until(rb"No queues yet\.")
        term.type(b"\x03")  # the terminal turns it into SIGINT for its foreground process
        assert term.wait() == 0


@pytest.mark.slow
@requires_sqlite
def test_top_without_a_terminal_stops_after_its_iterations(tmp_path: Path) -> None:
    args = ["--driver", "sqlite", "-o", f"path={tmp_path / 'queue.db'}"]
    done = subprocess.run(
        [str(SCRIPT), "top", *args, "--interval", "0.1", "--iterations", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "asynctasq top" in done.stdout and "No live workers." in done.stdout
