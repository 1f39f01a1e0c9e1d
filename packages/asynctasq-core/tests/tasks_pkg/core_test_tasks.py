"""Tasks imported by name in worker tests (child processes import this module too)."""

from __future__ import annotations

import asyncio
import os
import time

from asynctasq import task
from asynctasq.core.task import AsyncProcessTask, SyncProcessTask


@task(process=True)
def pid_of_sync_child() -> int:
    return os.getpid()


@task(process=True)
async def pid_of_async_child() -> tuple[int, bool]:
    await asyncio.sleep(0)
    return os.getpid(), asyncio.get_running_loop().is_running()


@task(process=True, timeout=1, max_attempts=1)
def spin_forever() -> None:
    while True:  # CPU-bound: only killing the process stops it
        pass


@task(process=True)
def write_pid(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


class ProcessSum(SyncProcessTask[int]):
    def __init__(self, numbers: list[int], out: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.numbers = numbers
        self.out = out

    def handle_sync(self) -> int:
        with open(self.out, "w") as f:
            f.write(f"{os.getpid()} {sum(self.numbers)}")
        return sum(self.numbers)


class AsyncProcessEcho(AsyncProcessTask[str]):
    def __init__(self, out: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.out = out

    async def handle(self) -> str:
        await asyncio.sleep(0)
        with open(self.out, "w") as f:
            f.write(str(os.getpid()))
        return "ok"


@task(process=True)
def slow_sync(seconds: float) -> None:
    time.sleep(seconds)


@task(process=True)
def write_if_imported(module: str, path: str) -> None:
    import sys

    with open(path, "w") as f:
        f.write(f"{module in sys.modules} {os.getpid()}")


@task(process=True, track=True, queue="lc")
def sleep_in_child(pid_file: str) -> None:
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(30)


@task(process=True, queue="lc")
def reports_from_a_child() -> str:
    from asynctasq import current_task

    current_task().report_progress(0.5, "half")
    return current_task().task_name
