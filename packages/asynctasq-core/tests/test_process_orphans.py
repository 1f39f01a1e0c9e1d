"""A worker killed with SIGKILL takes its task processes with it: the broker hands their
tasks out again after the visibility timeout, so a child left running would run the same
task a second time, at the same time as the worker that took it over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TASKS_DIR = str(Path(__file__).parent / "tasks_pkg")

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys

    sys.path.insert(0, {tasks!r})
    import process_death_tasks as tasks

    from asynctasq.core.dispatch import prepare
    from asynctasq.testing import MemoryDriver
    from asynctasq.worker import Worker


    async def main() -> None:
        driver = MemoryDriver()
        await driver.enqueue(prepare(tasks.outlive_the_worker({path!r})))
        worker = Worker(
            driver, queues=["orphan"], process_pool_size=1, allowed_roots=[{tasks!r}],
            poll_wait=0.1,
        )
        await worker.run()


    asyncio.run(main())
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended: only its parent has not collected it yet
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_a_killed_worker_leaves_no_task_process_running(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    code = SCRIPT.format(tasks=TASKS_DIR, path=str(marker))
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    child = 0
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text():
            assert proc.poll() is None, "the worker stopped before the task started"
            assert time.monotonic() < deadline, "the process task did not start"
            time.sleep(0.05)
        child = int(marker.read_text())
        assert alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the task's process outlived its killed worker"
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if child:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
