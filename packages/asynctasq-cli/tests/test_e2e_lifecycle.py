"""The lifecycle commands against a real ``asynctasq worker`` process (the installed console
script) on a SQLite file of the test's own: live workers, a running task's status and its
cancellation, and ``asynctasq events`` following a worker.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cli_lifecycle_tasks as lt
import pytest
from cli_lifecycle_testing import as_json, dispatch
from cli_testing import TASKS_DIR, Invoke, requires_sqlite

SCRIPT = Path(sys.executable).with_name("asynctasq")
pytestmark = [
    pytest.mark.slow,
    requires_sqlite,
    pytest.mark.skipif(not SCRIPT.exists(), reason=f"{SCRIPT} is not installed (uv sync)"),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def args(db: Path) -> list[str]:
    return ["--driver", "sqlite", "-o", f"path={db}"]


def child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ASYNCTASQ_") or k.startswith("ASYNCTASQ_TEST_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def started(command: list[str], cwd: Path, *, read_stdout: bool = False) -> Iterator[Child]:
    """Start ``asynctasq COMMAND...``; kill it if the test fails before it ends.

    Its stderr goes to a file (a pipe nobody reads could fill up and block it); its stdout
    is read line by line by a thread with `read_stdout`, else dropped.
    """
    err_path = cwd / f"stderr-{command[0]}-{time.monotonic_ns()}.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [str(SCRIPT), *command],
            stdout=subprocess.PIPE if read_stdout else subprocess.DEVNULL,
            stderr=err,
            text=True,
            env=child_env(),
            cwd=cwd,
        )
    child = Child(proc, err_path)
    try:
        yield child
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def worker_command(args: list[str], *extra: str) -> list[str]:
    return [
        "worker",
        *args,
        "--import",
        "cli_lifecycle_tasks",
        "--allowed-root",
        str(TASKS_DIR),
        "-q",
        lt.QUEUE,
        "--heartbeat-interval",
        "0.2",
        *extra,
    ]


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


class Lines:
    """The lines a process writes on `stream`, read by a thread as they come."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first event (one JSON line) from now on that `match` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching event within {timeout} s") from None
            if line is None:
                raise AssertionError("the events command ended")
            self.seen.append(line)
            event: dict[str, Any] = json.loads(line)
            if match(event):
                return event


@dataclass
class Child:
    """A running ``asynctasq`` process."""

    proc: subprocess.Popen[str]
    err_path: Path
    lines: Lines | None = None

    def __post_init__(self) -> None:
        if self.proc.stdout is not None:
            self.lines = Lines(self.proc.stdout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self) -> Lines:
        assert self.lines is not None
        return self.lines

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        """Send `sig` and wait for the exit; (exit code, stderr)."""
        self.proc.send_signal(sig)
        code = self.proc.wait(60)
        return code, self.err_path.read_text()


def test_workers_status_and_cancel_of_a_running_task(
    cli: Invoke, args: list[str], db: Path, markers: Path, tmp_path: Path
) -> None:
    with started(worker_command(args), tmp_path) as proc:

        def mine() -> list[dict[str, Any]]:
            found = as_json(cli("workers", *args, "--json"))
            return [w for w in found if w["pid"] == proc.pid]

        [info] = until(mine, "the worker in the registry")
        assert info["queues"] == [lt.QUEUE] and info["concurrency"] == 10
        assert info["host"] == socket.gethostname() and info["running"] == []
        assert info["worker_id"].startswith(f"{info['host']}:{proc.pid}:")

        [task_id] = dispatch(db, lt.slow(str(markers), "long", 60))
        until(lambda: (markers / "long.started").exists(), "the task to start")

        def running() -> dict[str, Any] | None:
            doc: dict[str, Any] = as_json(cli("status", task_id, *args, "--json"))
            return doc if doc["state"] == "running" and doc["progress"] == 0.25 else None

        doc = until(running, "the running status with its progress")
        assert doc["worker"] == info["worker_id"] and doc["attempts"] == 1
        shown = cli("status", task_id, *args)
        assert "running" in shown.stdout and "25% warming up" in shown.stdout
        listed = as_json(cli("tasks", *args, "--state", "running", "--json"))
        assert [d["task_id"] for d in listed] == [task_id]

        def runs_it() -> list[dict[str, Any]]:
            return [w for w in mine() if task_id in w["running"]]

        until(runs_it, "the heartbeat that lists the running task")
        table = cli("workers", *args)
        assert table.exit_code == 0, table.output
        for text in (info["worker_id"], str(proc.pid), lt.QUEUE, "1/10", task_id, "s ago"):
            assert text in table.stdout, text

        cancelled = cli("cancel", task_id, *args)
        assert cancelled.exit_code == 0, cancelled.output
        assert cancelled.stdout.startswith(f"{task_id}: cancel requested: it is running")
        until(
            lambda: as_json(cli("status", task_id, *args, "--json"))["state"] == "cancelled",
            "the cancelled state",
        )
        assert not (markers / "long.done").exists()

        code, err = proc.stop()
        assert code == 0, err
    assert "events off" in err
    assert "No live workers" in cli("workers", *args).stdout


def test_events_prints_json_lines_until_interrupted(
    cli: Invoke, args: list[str], db: Path, markers: Path, tmp_path: Path
) -> None:
    with started(["events", *args], tmp_path, read_stdout=True) as follower:
        lines = follower.events()
        with started(worker_command(args, "--events"), tmp_path) as worker:
            # Heartbeats keep coming: once one arrives, the follower is subscribed.
            beat = lines.wait_for(lambda e: e["type"] == "worker-heartbeat")
            assert beat["worker"].split(":")[1] == str(worker.pid)
            [task_id] = dispatch(db, lt.steps(str(markers), "evented", 3))
            done = lines.wait_for(
                lambda e: e["type"] == "task-succeeded" and e.get("task_id") == task_id
            )
            assert done["queue"] == lt.QUEUE and done["task_name"] == "cli_lifecycle_tasks:steps"
            assert done["duration"] >= 0 and done["worker"] == beat["worker"]
            code, err = worker.stop()
            assert code == 0, err
            assert "events on" in err
        lines.wait_for(lambda e: e["type"] == "worker-offline")
        code, err = follower.stop(signal.SIGINT)
    assert code == 0 and err == ""
    mine = [json.loads(line) for line in lines.seen]
    assert all(set(e) >= {"type", "at"} for e in mine)
    kinds = [e["type"] for e in mine if e.get("task_id") == task_id]
    assert kinds[0] == "task-started" and kinds[-1] == "task-succeeded"

    with started(
        ["events", *args, "--from-start", "--type", "task-succeeded", "-t", "worker-online"],
        tmp_path,
        read_stdout=True,
    ) as replay:
        again = replay.events()
        online = again.wait_for(lambda e: True)
        assert online["type"] == "worker-online" and online["info"]["pid"] == worker.pid
        succeeded = again.wait_for(lambda e: True)
        assert succeeded["type"] == "task-succeeded" and succeeded["task_id"] == task_id
        code, err = replay.stop(signal.SIGINT)
    assert code == 0 and err == ""
    assert {json.loads(line)["type"] for line in again.seen} == {"worker-online", "task-succeeded"}
