"""Shared by every framework's bench app; standard library only (runs in every venv).

The orchestrator passes, in the environment: ``BENCH_URL`` (broker), ``BENCH_QUEUE``,
``BENCH_N`` (tasks in the drain), ``BENCH_MARKS`` (file the worker writes when the drain's
first task started and its N-th finished) and ``BENCH_LATENCY`` (file a probe task appends
its dispatch-to-start delay to). Times are ``time.monotonic()``, system-wide on Linux, so
client and worker processes share the clock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

URL = os.environ.get("BENCH_URL", "")
QUEUE = os.environ.get("BENCH_QUEUE", "bench")
N = int(os.environ.get("BENCH_N", "0") or 0)
MARKS = os.environ.get("BENCH_MARKS", "")
LATENCY = os.environ.get("BENCH_LATENCY", "")
COUNTER = os.environ.get("BENCH_COUNTER", "")

_counter_fd = -1
_counter_pid = 0

_lock = threading.Lock()
_count = 0
_first = 0.0


def tick() -> None:
    """The no-op task's body: note the first start and the N-th, nothing else."""
    global _count, _first
    now = time.monotonic()
    with _lock:
        _count += 1
        if _count == 1:
            _first = now
        if _count == N:
            with open(MARKS, "w") as marks:
                json.dump({"first": _first, "last": now, "count": _count}, marks)


def count() -> None:
    """The scaling run's no-op task body: one byte appended to the shared counter file.

    O_APPEND writes are atomic, so the file's size is the number of tasks run by every
    worker process together (whatever the framework's process model); the orchestrator
    watches the size. One write per task costs a few microseconds.
    """
    global _counter_fd, _counter_pid
    if _counter_pid != os.getpid():  # first task in this process (or a forked child)
        _counter_fd = os.open(COUNTER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _counter_pid = os.getpid()
        # Says "this process is running tasks": the rate is taken once all N are.
        os.close(os.open(f"{COUNTER}.{_counter_pid}", os.O_WRONLY | os.O_CREAT, 0o644))
    os.write(_counter_fd, b".")


def record_latency(sent: float) -> None:
    """The probe task's body: append how long after `sent` it started."""
    delay = time.monotonic() - sent
    fd = os.open(LATENCY, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{delay}\n".encode())
    finally:
        os.close(fd)


def _lines() -> int:
    try:
        with open(LATENCY, "rb") as file:
            return file.read().count(b"\n")
    except FileNotFoundError:
        return 0


def report(name: str, value: float) -> None:
    print(json.dumps({name: value}), flush=True)


def enqueue_sync(send: Callable[[], Any], n: int) -> None:
    """Send one task untimed (connections, caches), then `n` timed; N = n + 1 in all."""
    send()
    started = time.perf_counter()
    for _ in range(n):
        send()
    report("enqueue", n / (time.perf_counter() - started))


async def enqueue_async(send: Callable[[], Awaitable[Any]], n: int) -> None:
    """Send one task untimed (connections, caches), then `n` timed; N = n + 1 in all."""
    await send()
    started = time.perf_counter()
    for _ in range(n):
        await send()
    report("enqueue", n / (time.perf_counter() - started))


async def fill_async(send: Callable[[], Awaitable[Any]], n: int, window: int = 500) -> None:
    """Send `n` tasks, `window` at a time in flight: the scaling run's untimed fill, for
    clients that have no batch call."""
    import asyncio

    for start in range(0, n, window):
        await asyncio.gather(*(send() for _ in range(min(window, n - start))))


def latency_sync(send: Callable[[float], Any], samples: int) -> None:
    for i in range(samples):
        send(time.monotonic())
        _wait_for(i + 1)
        time.sleep(0.005)  # the worker is idle again before the next probe


async def latency_async(send: Callable[[float], Awaitable[Any]], samples: int) -> None:
    import asyncio

    for i in range(samples):
        await send(time.monotonic())
        # Polled from a thread, as the sync clients poll: asyncio.sleep(0.0005) under uvloop
        # (AsyncTasQ's client) is a timer of 0 ms, a busy loop that took a whole core from the
        # worker and the broker for as long as each probe was on its way.
        await asyncio.to_thread(_wait_for, i + 1)
        await asyncio.sleep(0.005)


def _wait_for(count: int) -> None:
    deadline = time.monotonic() + 20
    while _lines() < count:
        if time.monotonic() > deadline:
            raise SystemExit("no probe start reported within 20 s")
        time.sleep(0.0005)
