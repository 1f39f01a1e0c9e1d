"""A kit for the crash test every driver owes: workers SIGKILLed mid-run lose no task.

The test itself stays the driver's (how tasks record their runs differs per backend); this
module holds what every such test needs:

* `WorkerProcesses`: worker subprocesses (a script of yours running core's `Worker`), each
  with its own log file, that can be killed, reaped when they died by themselves, stopped,
  and reported on when an assertion fails.
* `wait_until`: poll a condition, sync or async, with a deadline and the workers' logs in
  the failure message.
* `assert_at_least_once`: the delivery contract, checked from the recorded runs.

Example::

    workers = WorkerProcesses(HERE / "crash_worker.py", [queue], tmp_path)
    try:
        victim = workers.start()
        await wait_until(lambda: started_by(victim) >= 5, 60, "victim busy", workers.report)
        workers.kill(victim)
        ...
        assert_at_least_once(starts, finishes, workers.killed, total)
    finally:
        workers.stop_all()
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path

Run = tuple[int, int]
"""One run of a task: (pid of the worker process, the task's number)."""


class WorkerProcesses:
    """Worker subprocesses: ``python <script> <*args> <*start args>`` in the script's folder.

    Args:
        script: The worker script.
        args: Arguments every worker gets (the queue, say).
        logs: Folder for one log file per worker (stdout and stderr).
        env: Environment of the workers (default: this process's, read at each start).

    Attributes:
        procs: The workers started and not known dead, by pid.
        killed: Pids of workers that were killed or died by themselves.
    """

    def __init__(
        self,
        script: Path,
        args: Sequence[str],
        logs: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.script = script
        self.args = list(args)
        self.logs = logs
        self.env = env
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.killed: set[int] = set()
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, *args: str) -> int:
        """Start one worker (with `args` after the common ones); returns its pid."""
        number = len(self.procs) + len(self.killed)
        with open(self.logs / f"worker-{number}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(self.script), *self.args, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.script.parent,
                env=dict(self.env if self.env is not None else os.environ),
            )
        self.procs[proc.pid] = proc
        return proc.pid

    def kill(self, pid: int) -> None:
        """SIGKILL worker `pid` and wait for it to be gone."""
        proc = self.procs.pop(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.killed.add(pid)

    def reap(self) -> None:
        """Count the workers that died by themselves (a task killed them) as killed."""
        for pid, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.killed.add(pid)
                del self.procs[pid]

    def stop_all(self) -> None:
        """SIGTERM every live worker; SIGKILL those still running 15 s later."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()

    def report(self) -> str:
        """The end of every worker's log, for an assertion message."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("worker-*.log"))
        )


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]],
    within: float,
    what: str,
    report: Callable[[], str] | None = None,
) -> None:
    """Poll `check` every 50 ms until it is true.

    Raises:
        AssertionError: Not true within `within` seconds; names `what` and adds `report()`.
    """
    deadline = time.monotonic() + within
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            detail = f"\n{report()}" if report is not None else ""
            raise AssertionError(f"timed out after {within} s waiting for {what}{detail}")
        await asyncio.sleep(0.05)


def assert_at_least_once(
    starts: Iterable[Run], finishes: Iterable[Run], killed: set[int], total: int
) -> None:
    """Check the at-least-once contract from the runs tasks ``0 .. total-1`` recorded.

    * every task finished;
    * a task ran more than once only because an earlier run was in a killed worker: the
      workers that were not killed ran each task at most once;
    * some kill hit a running task, or the test proved nothing.
    """
    starts, finishes = list(starts), list(finishes)
    missing = set(range(total)) - {n for _, n in finishes}
    assert not missing, f"{len(missing)} task(s) never finished, e.g. {sorted(missing)[:10]}"
    by_survivors = Counter(n for pid, n in starts if pid not in killed)
    twice = {n: count for n, count in by_survivors.items() if count > 1}
    assert not twice, f"tasks run more than once by workers that were not killed: {twice}"
    interrupted = {(pid, n) for pid, n in starts if pid in killed} - set(finishes)
    assert interrupted, "no kill hit a running task; the test proved nothing"
