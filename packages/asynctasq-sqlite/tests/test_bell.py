"""The cross-process bell: a waiting worker in another process is rung awake, polling stays
the safety net, idle waits stay quiet, and a producer never hangs or fails on the bell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_sqlite import SqliteDriver, _bell
from asynctasq_sqlite import _operations as ops
from asynctasq_sqlite import driver as driver_module
from asynctasq_sqlite._bell import bell_for

HERE = Path(__file__).parent
SCRIPT = HERE / "bell_worker.py"
TIMEOUT = 5.0
"""How long a rung task may take to start: far below the worker's 30 s poll."""


def message(task_id: str, queue: str = "q") -> OutgoingMessage:
    return OutgoingMessage(task_id, queue, b"{}", visibility_timeout=60.0)


def bell_dir(db: Path) -> Path:
    return Path(str(db) + _bell.SUFFIX)


def sockets(db: Path) -> list[Path]:
    directory = bell_dir(db)
    return sorted(directory.glob("*.sock")) if directory.is_dir() else []


async def run(*args: str, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *args,
        cwd=HERE,  # the worker imports the task module from here
        env={**os.environ, "BELL_LOG": str(log)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def until(test: object, within: float, what: str) -> None:
    assert callable(test)
    deadline = time.monotonic() + within
    while not test():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


def started(log: Path) -> list[str]:
    try:
        return [line.split()[1] for line in log.read_text().splitlines()]
    except FileNotFoundError:
        return []


@pytest.fixture
async def worker_process(tmp_path: Path) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()  # nothing to finish: its one fetch waits up to 60 s
            await proc.wait()


async def dispatch(db: Path, mark: str, log: Path) -> None:
    proc = await run("dispatch", str(db), mark, log=log)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()


async def test_a_worker_in_another_process_is_rung_awake(
    tmp_path: Path, worker_process: list[asyncio.subprocess.Process]
) -> None:
    db, log = tmp_path / "queue.db", tmp_path / "started.log"
    worker_process.append(await run("work", str(db), log=log))
    await until(lambda: len(sockets(db)) == 1, 60, "the worker to listen")
    for mark in ("first", "second"):
        await asyncio.sleep(0.5)  # the worker checked the queue and waits (30 s poll)
        sent = time.monotonic()
        await dispatch(db, mark, log)
        await until(lambda m=mark: m in started(log), TIMEOUT, f"task {mark!r} to start")
        assert time.monotonic() - sent < 30, "found by polling, not rung"


async def test_without_the_bell_a_worker_in_another_process_still_polls(
    tmp_path: Path, worker_process: list[asyncio.subprocess.Process]
) -> None:
    db, log = tmp_path / "queue.db", tmp_path / "started.log"
    worker_process.append(await run("work", str(db), "--no-bell", log=log))
    await until(db.exists, 60, "the worker to create the database")
    await asyncio.sleep(0.5)
    await dispatch(db, "polled", log)
    await until(lambda: "polled" in started(log), 30, "the polled task to start")
    assert sockets(db) == []


async def test_an_unusable_bell_directory_falls_back_to_polling(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    bell_dir(db).write_text("not a directory")
    driver = SqliteDriver(path=str(db), poll_interval=0.05)
    await driver.connect()
    try:
        waiting = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=30))
        await asyncio.sleep(0.3)
        assert not bell_for(str(db)).listening
        # Written the way another process would, minus its ring: only polling can see it.
        with sqlite3.connect(db, isolation_level=None) as conn:
            ops.enqueue(conn, [message("behind")])
        [got] = await asyncio.wait_for(waiting, 10)
        assert got.task_id == "behind"
        await driver.enqueue(message("rung"))  # ringing with no bell directory is harmless
        assert [d.task_id for d in await driver.dequeue(["q"], limit=1, wait=0)] == ["rung"]
    finally:
        await driver.close()
    assert bell_dir(db).read_text() == "not a directory"


async def test_an_idle_wait_checks_rarely_and_is_not_woken(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    driver = SqliteDriver(path=str(db), poll_interval=0.05)
    checks = 0
    take = driver._take

    async def counting_take(*args: object) -> ops.Taken:
        nonlocal checks
        checks += 1
        return await take(*args)  # type: ignore[arg-type]

    driver._take = counting_take  # type: ignore[method-assign]
    try:
        assert await driver.dequeue(["q"], limit=1, wait=2.0) == []
        bell = bell_for(str(db))
        assert bell.listening
        # Backoff from 5 ms to 1 s: about 9 checks in 2 s (polling every 50 ms: about 42).
        assert checks <= 12, checks
        assert bell.wakeups == 0
    finally:
        await driver.close()


async def test_close_stops_listening_and_removes_the_socket(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    driver = SqliteDriver(path=str(db))
    assert await driver.dequeue(["q"], limit=1, wait=0.01) == []
    assert len(sockets(db)) == 1
    await driver.close()
    assert sockets(db) == []
    assert not bell_for(str(db)).listening


async def test_the_bell_takes_the_database_file_permissions(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    driver = SqliteDriver(path=str(db))
    await driver.connect()
    os.chmod(db, 0o640)
    try:
        await driver.dequeue(["q"], limit=1, wait=0.01)
        [sock] = sockets(db)
        assert stat.S_IMODE(bell_dir(db).stat().st_mode) == 0o750
        assert stat.S_IMODE(sock.stat().st_mode) == 0o640
    finally:
        await driver.close()


async def test_stale_full_and_foreign_entries_never_hang_or_fail_a_producer(
    tmp_path: Path,
) -> None:
    db = tmp_path / "queue.db"
    directory = bell_dir(db)
    directory.mkdir()
    # A socket whose process died without removing it.
    stale = directory / ("a" * 16 + ".sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale))
    dead.close()
    # A live socket that never reads: its buffer fills up.
    full = directory / ("b" * 16 + ".sock")
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(str(full))
    # Entries that are not ours: a regular file and a symlink with a socket's name, junk.
    (directory / ("c" * 16 + ".sock")).write_text("x")
    (directory / ("d" * 16 + ".sock")).symlink_to(full)
    (directory / "junk").write_text("x")
    producer = SqliteDriver(path=str(db))
    try:
        for i in range(3000):  # far more than a datagram buffer holds
            await producer.enqueue(message(f"t{i}"))
        [stats] = await producer.stats(["q"])
        assert stats.ready == 3000
        assert not stale.exists(), "the stale socket is removed"
        assert (directory / ("c" * 16 + ".sock")).read_text() == "x"
        assert (directory / ("d" * 16 + ".sock")).is_symlink()
        received = 0
        deaf.setblocking(False)
        while True:
            try:
                deaf.recv(64)
            except BlockingIOError:
                break
            received += 1
        assert 0 < received < 3000, "only the live socket got rings, until it was full"
    finally:
        deaf.close()
        await producer.close()


async def test_junk_datagrams_only_wake_the_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Polling so rare that only a ring can end the wait below in time.
    monkeypatch.setattr(driver_module, "MIN_POLL_INTERVAL", 60.0)
    monkeypatch.setattr(_bell, "LISTENING_POLL_INTERVAL", 60.0)
    db = tmp_path / "queue.db"
    driver = SqliteDriver(path=str(db), poll_interval=60.0)
    try:
        await driver.dequeue(["q"], limit=1, wait=0.01)
        [path] = sockets(db)
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        for size in (0, 1, 64, 4096):
            with contextlib.suppress(BlockingIOError):
                sender.sendto(os.urandom(size), str(path))
        sender.close()
        bell = bell_for(str(db))
        await until(lambda: bell.wakeups >= 1, 10, "a wake-up")
        assert bell.listening
        # Still serving: another process's enqueue (a ring) wakes a waiting dequeue.
        waiting = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=30))
        await asyncio.sleep(0.2)
        with sqlite3.connect(db, isolation_level=None) as conn:
            ops.enqueue(conn, [message("after-junk")])
        ring = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ring.sendto(b"\x01", str(path))
        ring.close()
        [got] = await asyncio.wait_for(waiting, TIMEOUT)
        assert got.task_id == "after-junk"
    finally:
        await driver.close()


def test_a_forked_child_closes_its_copy_of_the_ringing_socket() -> None:
    """The child gets its own sender; the parent's inherited one is closed in the child, not
    left for the collector (an unclosed-socket warning in every forked process)."""
    script = (
        "import gc, os, sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "sys.unraisablehook = lambda u: os._exit(3)\n"
        "from asynctasq_sqlite import _bell\n"
        "parent = _bell._sender()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    child = _bell._sender(); gc.collect()\n"
        "    os._exit(0 if child is not parent and parent.fileno() == -1 else 4)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status) or (0 if parent.fileno() != -1 else 5))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr.decode()[-2000:])
