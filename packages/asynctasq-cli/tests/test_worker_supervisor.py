"""``asynctasq worker --workers N`` as real processes on SQLite and Redis.

A worker process SIGKILLed mid-run is replaced and no task is lost; SIGTERM drains every
worker and exits 0; a second SIGTERM gives everything back at once and exits 143; a worker
that cannot start is a crash loop that ends the supervisor with exit code 3.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_supervised_tasks as t
import pytest
from cli_testing import REDIS_URL, TASKS_DIR, enqueue, require_redis

from asynctasq.drivers.base import Driver
from asynctasq.supervisor import EXIT_CRASH_LOOP, EXIT_FORCED_BASE, EXIT_OK
from asynctasq.testing.crash import assert_at_least_once
from asynctasq.utils.cpus import cpu_limit

SCRIPT = Path(sys.executable).with_name("asynctasq")
QUEUE = "sup"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SCRIPT.exists(), reason=f"{SCRIPT} is not installed (uv sync)"),
]


@dataclass
class Backend:
    name: str
    make: Callable[[], Driver]
    args: list[str]


def sqlite_backend(tmp_path: Path) -> Backend:
    pytest.importorskip("asynctasq_sqlite")
    from asynctasq_sqlite import SqliteDriver

    path = str(tmp_path / "queue.db")
    return Backend(
        "sqlite", lambda: SqliteDriver(path=path), ["--driver", "sqlite", "-o", f"path={path}"]
    )


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield sqlite_backend(tmp_path)
        return
    require_redis()
    from asynctasq_redis import RedisDriver

    prefix = f"suptest-{uuid.uuid4().hex[:8]}"
    yield Backend(
        "redis",
        lambda: RedisDriver(url=REDIS_URL, prefix=prefix),
        ["--driver", "redis", "-o", f"url={REDIS_URL}", "-o", f"prefix={prefix}"],
    )

    async def clean() -> None:
        driver = RedisDriver(url=REDIS_URL, prefix=prefix)
        await driver.connect()
        try:
            await driver.release(await driver.dequeue([QUEUE], limit=1000, wait=0))
            await driver.purge(QUEUE)
            await driver.purge_dead_letters()
        finally:
            await driver.close()

    asyncio.run(clean())


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ASYNCTASQ_") or k.startswith("ASYNCTASQ_TEST_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def supervisor(
    backend: Backend,
    log: Path,
    *args: str,
    cpus: set[int] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``asynctasq worker --workers ...`` with its output in `log`, on `cpus` (default: this
    process's), with `env` added; stopped if a test fails."""
    command = [
        str(SCRIPT),
        "worker",
        *backend.args,
        "--import",
        "cli_supervised_tasks",
        "--allowed-root",
        str(TASKS_DIR),
        "--queues",
        QUEUE,
        "--no-live",
        *args,
    ]
    on_cpus = None if cpus is None else lambda: os.sched_setaffinity(0, cpus)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**_env(), **(env or {})},
            preexec_fn=on_cpus,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()  # its workers get SIGTERM from the kernel (parent death signal)
                proc.wait(5)


def runs(marker_dir: Path, name: str) -> list[tuple[int, int]]:
    path = marker_dir / name
    if not path.exists():
        return []
    return [(int(p), int(n)) for p, n in (line.split(":") for line in path.read_text().split())]


def wait_until(
    check: Callable[[], bool],
    within: float,
    what: str,
    log: Path,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + within
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {what}\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:]}")
        time.sleep(0.05)


def started_pids(log: Path) -> dict[int, list[int]]:
    """Worker number -> the pids the supervisor started for it, in order."""
    found: dict[int, list[int]] = {}
    for number, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", log.read_text()):
        found.setdefault(int(number), []).append(int(pid))
    return found


def queue_counts(driver: Driver) -> tuple[int, int]:
    """(ready, in flight) on the test queue."""

    async def read() -> tuple[int, int]:
        await driver.connect()
        try:
            [stats] = await driver.stats([QUEUE])
            return stats.ready, stats.in_flight
        finally:
            await driver.close()

    return asyncio.run(read())


def test_a_killed_worker_is_replaced_and_no_task_is_lost(backend: Backend, tmp_path: Path) -> None:
    marks, log, total, held = tmp_path / "marks", tmp_path / "supervisor.log", 240, 2
    marks.mkdir()
    with supervisor(backend, log, "--workers", "2", "--concurrency", "4") as proc:
        wait_until(lambda: len(started_pids(log)) == 2, 60, "two workers", log, proc)
        # The first tasks run until released: the process running one of them is in the
        # middle of it when it is killed, however late this test gets to the kill on a
        # loaded machine (short tasks alone may all be over by then).
        tasks = [t.hold(str(marks), n) for n in range(held)]
        tasks += [t.work(str(marks), n, 0.05) for n in range(held, total)]
        enqueue(backend.make(), tasks)
        first = started_pids(log)

        def holder() -> int | None:
            return next((pid for pid, n in runs(marks, "started") if n < held), None)

        wait_until(lambda: holder() is not None, 60, "a held task running", log, proc)
        victim = holder()
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        (marks / "release").touch()
        [number] = [n for n, pids in first.items() if pids == [victim]]
        wait_until(lambda: len(started_pids(log)[number]) == 2, 30, "a replacement", log)
        replacement = started_pids(log)[number][1]
        wait_until(
            lambda: {n for _, n in runs(marks, "done")} == set(range(total)),
            90,
            "every task done",
            log,
        )
        assert_at_least_once(runs(marks, "started"), runs(marks, "done"), {victim}, total)
        assert replacement != victim and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == EXIT_OK, log.read_text(errors="replace")[-4000:]
    text = log.read_text()
    assert f"worker {number} (pid {victim}) was killed by SIGKILL" in text
    assert queue_counts(backend.make()) == (0, 0)


def test_sigterm_drains_every_worker_and_exits_0(backend: Backend, tmp_path: Path) -> None:
    marks, log = tmp_path / "marks", tmp_path / "supervisor.log"
    marks.mkdir()
    with supervisor(
        backend, log, "--workers", "2", "--concurrency", "2", "--log-format", "json"
    ) as proc:
        wait_until(lambda: len(started_pids(log)) == 2, 60, "two workers", log, proc)
        # Tasks that run until released: the first process up takes two and the other two
        # wait for the second, however late a loaded machine starts it.
        enqueue(backend.make(), [t.hold(str(marks), n) for n in range(4)])
        wait_until(lambda: len(runs(marks, "started")) == 4, 60, "four tasks running", log, proc)
        # Both workers hold tasks: the drain is every worker's, not one's.
        assert len({pid for pid, _ in runs(marks, "started")}) == 2
        proc.send_signal(signal.SIGTERM)

        def draining() -> set[Any]:
            return {
                r.get("worker")
                for r in map(json.loads, re.findall(r"^\{.*\}$", log.read_text(), re.M))
                if "finishing running tasks" in r.get("message", "")
            }

        wait_until(lambda: draining() == {1, 2}, 30, "both workers draining", log, proc)
        (marks / "release").touch()  # the running tasks end during the drain
        assert proc.wait(60) == EXIT_OK
    assert sorted(n for _, n in runs(marks, "done")) == [0, 1, 2, 3]
    assert queue_counts(backend.make()) == (0, 0)
    # Every worker line is still one JSON object, with the worker's number in it.
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert {r.get("worker") for r in records if r["logger"] == "asynctasq.cli"} == {1, 2}


def test_sigterm_to_every_process_at_once_still_drains(tmp_path: Path) -> None:
    """systemd's default KillMode (control-group) signals the supervisor and each worker
    process itself; the supervisor then passes its own signal on, milliseconds later. That
    is one stop, not a first and a second: the running tasks finish."""
    backend = sqlite_backend(tmp_path)
    marks, log = tmp_path / "marks", tmp_path / "supervisor.log"
    marks.mkdir()
    with supervisor(backend, log, "--workers", "2", "--concurrency", "2") as proc:
        wait_until(lambda: len(started_pids(log)) == 2, 60, "two workers", log, proc)
        enqueue(backend.make(), [t.hold(str(marks), n) for n in range(4)])
        wait_until(lambda: len(runs(marks, "started")) == 4, 60, "four tasks running", log, proc)
        workers = [pids[-1] for pids in started_pids(log).values()]
        for pid in [proc.pid, *workers]:
            os.kill(pid, signal.SIGTERM)
        wait_until(
            lambda: log.read_text().count("finishing running tasks") >= 2, 30, "draining", log
        )
        time.sleep(0.5)  # past the echo window: a stop-now would have given them back
        (marks / "release").touch()
        assert proc.wait(60) == EXIT_OK, log.read_text()[-4000:]
    assert "stopping now" not in log.read_text()
    assert sorted(n for _, n in runs(marks, "done")) == [0, 1, 2, 3]
    assert queue_counts(backend.make()) == (0, 0)


def test_a_second_sigterm_gives_everything_back_at_once(backend: Backend, tmp_path: Path) -> None:
    marks, log = tmp_path / "marks", tmp_path / "supervisor.log"
    marks.mkdir()
    with supervisor(backend, log, "--workers", "2", "--shutdown-timeout", "60") as proc:
        wait_until(lambda: len(started_pids(log)) == 2, 60, "two workers", log, proc)
        enqueue(backend.make(), [t.work(str(marks), n, 120) for n in range(4)])
        wait_until(lambda: len(runs(marks, "started")) == 4, 30, "four tasks running", log, proc)
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "send again to stop them now" in log.read_text(), 10, "drain", log)
        proc.send_signal(signal.SIGTERM)
        # Well inside the 60 s shutdown timeout: the abort is not a drain.
        assert proc.wait(30) == EXIT_FORCED_BASE + signal.SIGTERM
    assert runs(marks, "done") == []
    assert "stopping every worker process now" in log.read_text()
    assert queue_counts(backend.make()) == (4, 0)  # given back, ready to run again


def test_the_supervisors_stop_now_holds_when_a_workers_loop_was_blocked(tmp_path: Path) -> None:
    """Both signals reach a worker whose event loop is blocked, and it handles them together:
    the supervisor's "stop now" is a signal of its own, not a second SIGTERM a worker would
    take for the first delivered again, so the task is given back, not left leased."""
    backend = sqlite_backend(tmp_path)
    marks, log = tmp_path / "marks", tmp_path / "supervisor.log"
    marks.mkdir()
    with supervisor(backend, log, "--workers", "1", "--shutdown-timeout", "60") as proc:
        wait_until(lambda: len(started_pids(log)) == 1, 60, "the worker", log, proc)
        enqueue(backend.make(), [t.blocks_the_loop(str(marks), 0, 3)])
        wait_until(lambda: len(runs(marks, "started")) == 1, 30, "the task running", log, proc)
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "send again to stop them now" in log.read_text(), 10, "drain", log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == EXIT_FORCED_BASE + signal.SIGTERM, log.read_text()[-3000:]
    assert "stopping now" in log.read_text()
    assert runs(marks, "done") == []
    assert queue_counts(backend.make()) == (1, 0)  # given back: ready at once


def test_a_task_that_catches_its_cancellation_ends_with_its_process(tmp_path: Path) -> None:
    """Its lease is no longer renewed once the worker stops: the process ends instead of
    letting it run on (asyncio.run's teardown would wait for it for ever) while the broker
    hands the task to another worker."""
    backend = sqlite_backend(tmp_path)
    marks, log = tmp_path / "marks", tmp_path / "supervisor.log"
    marks.mkdir()
    with supervisor(backend, log, "--workers", "1", "--shutdown-timeout", "0.5") as proc:
        wait_until(lambda: len(started_pids(log)) == 1, 60, "the worker", log, proc)
        enqueue(backend.make(), [t.will_not_stop(str(marks), 0)])
        wait_until(lambda: len(runs(marks, "started")) == 1, 30, "the task running", log, proc)
        [(pid, _)] = runs(marks, "started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == EXIT_OK, log.read_text()[-3000:]
    assert "did not stop when cancelled" in log.read_text()
    assert runs(marks, "cancelled")  # it was asked to stop, and would not
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_worker_that_cannot_start_is_a_crash_loop(tmp_path: Path) -> None:
    log = tmp_path / "supervisor.log"
    sqlite = sqlite_backend(tmp_path)
    with supervisor(sqlite, log, "--workers", "2", "--import", "cli_broken_import") as proc:
        assert proc.wait(90) == EXIT_CRASH_LOOP
    text = log.read_text()
    assert re.search(r"crash loop: worker \d died 5 times in a row within 60 s of starting", text)
    assert "broken on purpose" in text  # the worker's own error is there too
    assert len(started_pids(log)) == 2


def test_a_workers_start_up_error_is_a_tagged_log_record(tmp_path: Path) -> None:
    """The one line that says why a worker cannot start is a record like the others: JSON
    with the worker's number when JSON was asked for, ``[worker N]`` in text."""
    log = tmp_path / "supervisor.log"
    sqlite = sqlite_backend(tmp_path)
    args = ("--workers", "1", "--import", "cli_broken_import", "--log-format", "json")
    args += ("--log-level", "critical")  # the reason shows however quiet the logs are
    with supervisor(sqlite, log, *args) as proc:
        assert proc.wait(90) == EXIT_CRASH_LOOP
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), lines
    records = [json.loads(line) for line in lines]
    errors = [r for r in records if "broken on purpose" in r["message"]]
    assert errors and all(r.get("worker") == 1 and r["level"] == "critical" for r in errors)


def test_a_usage_error_in_the_workers_stops_at_the_first(tmp_path: Path) -> None:
    log = tmp_path / "supervisor.log"
    sqlite = sqlite_backend(tmp_path)
    with supervisor(
        sqlite, log, "--workers", "2", "--allowed-root", str(tmp_path / "nope")
    ) as proc:
        assert proc.wait(60) == EXIT_CRASH_LOOP
    text = log.read_text()
    assert "a usage or configuration error that every start would repeat" in text
    assert "not a directory" in text
    assert "starting it again" not in text


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_a_bad_workers_value_is_a_usage_error(cli: Any, value: str) -> None:
    result = cli("worker", "--driver", "memory", "--workers", value)
    assert result.exit_code == 2
    assert "--workers: workers must be a whole number >= 1 or 'auto'" in result.output


def _cpus_seen(marks: Path, mode: str) -> dict[int, set[int]]:
    """pid -> the CPUs a task of `mode` found it may run on in that process."""
    return {
        int(path.name.split("-")[-1]): {int(c) for c in path.read_text().split(",")}
        for path in marks.glob(f"{mode}-*")
    }


def two_cpus() -> list[int]:
    """Two CPUs this process may use, with no CPU limit below them; skips elsewhere."""
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("needs CPU affinity (Linux)")
    allowed = sorted(os.sched_getaffinity(0))
    limit = cpu_limit()
    if len(allowed) < 2 or (limit is not None and limit < 2):
        pytest.skip("needs 2 CPUs")
    return allowed[:2]


@pytest.mark.parametrize("auto", [False, True], ids=["asked", "auto"])
def test_pinned_workers_run_their_loops_on_one_cpu_each_and_their_pools_on_all(
    backend: Backend, tmp_path: Path, auto: bool
) -> None:
    # On two CPUs, two workers are one per CPU: ASYNCTASQ_PIN_CPUS=auto pins them too.
    allowed = two_cpus()
    marks, log = tmp_path / "marks", tmp_path / "supervisor.log"
    marks.mkdir()
    args = ("--workers", "2", *([] if auto else ["--pin-cpus"]), "--concurrency", "1")
    env = {"ASYNCTASQ_PIN_CPUS": "auto"} if auto else {}
    with supervisor(backend, log, *args, cpus=set(allowed), env=env) as proc:
        wait_until(lambda: len(started_pids(log)) == 2, 60, "two workers", log, proc)
        pids = {number: pids[0] for number, pids in started_pids(log).items()}
        # One task at a time per worker; more of each kind until both workers ran every kind
        # (which worker takes which task is up to the broker and the load).
        kinds = (t.cpus_in_loop, t.cpus_in_thread, t.cpus_in_process)

        def seen_everywhere() -> bool:
            # Process tasks too (a pool child of each worker, or two of one), in the same
            # loop: enqueuing must go on until they ran, since which worker takes which task
            # is not up to the test.
            return len(_cpus_seen(marks, "process")) >= 2 and all(
                set(_cpus_seen(marks, mode)) == set(pids.values())
                for mode in ("loop", "to_thread", "thread")
            )

        deadline = time.monotonic() + 90
        while not seen_everywhere():
            if time.monotonic() > deadline or proc.poll() is not None:
                modes = ("loop", "to_thread", "thread", "process")
                seen = {m: sorted(_cpus_seen(marks, m)) for m in modes}
                raise AssertionError(f"workers {pids}, seen {seen}\n{log.read_text()[-4000:]}")
            enqueue(backend.make(), [kind(str(marks)) for _ in range(2) for kind in kinds])
            time.sleep(1.0)
    assert "starting 2 worker process(es), each pinned to one of CPUs" in log.read_text()
    loops = _cpus_seen(marks, "loop")
    assert loops == {pids[1]: {allowed[0]}, pids[2]: {allowed[1]}}
    # Pinned once started: the task modules were imported on every CPU, and task threads,
    # to_thread and the process pool still run on every CPU.
    for mode in ("import", "to_thread", "thread", "process"):
        assert all(cpus == set(allowed) for cpus in _cpus_seen(marks, mode).values()), mode
    assert ("(pin_cpus auto: one worker per CPU)" in log.read_text()) == auto


@pytest.mark.parametrize(
    ("args", "pin", "on_cpus"),
    [
        (["--workers", "2"], None, 2),  # off by default
        (["--workers", "2", "--no-pin-cpus"], "auto", 2),  # the option wins
        (["--workers", "1"], "auto", 2),  # fewer workers than CPUs
        (["--workers", "2"], "auto", 1),  # more workers than CPUs
    ],
    ids=["default", "turned-off", "fewer-workers", "more-workers"],
)
def test_workers_are_not_pinned_by_default_nor_by_auto_unless_one_per_cpu(
    tmp_path: Path, args: list[str], pin: str | None, on_cpus: int
) -> None:
    allowed = set(two_cpus()[:on_cpus])
    marks, log = tmp_path / "marks", tmp_path / "supervisor.log"
    marks.mkdir()
    workers = int(args[1])
    env = {} if pin is None else {"ASYNCTASQ_PIN_CPUS": pin}
    with supervisor(sqlite_backend(tmp_path), log, *args, cpus=allowed, env=env) as proc:
        wait_until(lambda: len(started_pids(log)) == workers, 60, "the workers", log, proc)
        enqueue(sqlite_backend(tmp_path).make(), [t.cpus_in_loop(str(marks))])
        wait_until(lambda: len(_cpus_seen(marks, "loop")) == 1, 60, "a task", log, proc)
    assert list(_cpus_seen(marks, "loop").values()) == [allowed]
    assert f"starting {workers} worker process(es)\n" in log.read_text()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--pin-cpus"], {}, "--pin-cpus (or ASYNCTASQ_PIN_CPUS) pins the processes of"),
        (
            ["--workers", "2"],
            {"ASYNCTASQ_PIN_CPUS": "maybe"},
            "ASYNCTASQ_PIN_CPUS: expected true, false or auto, got 'maybe'",
        ),
        (["--pin-cpus"], {"ASYNCTASQ_PIN_CPUS": "false"}, "--pin-cpus (or ASYNCTASQ_PIN_CPUS)"),
    ],
)
def test_pinning_needs_workers_and_a_yes_or_no(
    cli: Any, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = cli("worker", "--driver", "memory", *args)
    assert result.exit_code == 2
    assert message in result.output


@contextmanager
def cpu_limited_group(cpus: float) -> Iterator[Path]:
    """A fresh control group allowed `cpus` CPUs' worth of time; its ``cgroup.procs``.
    Skips where this process may not make one (not root, no writable cpu controller)."""
    name = f"asynctasq-test-{uuid.uuid4().hex[:8]}"
    period = 100_000
    v1 = Path("/sys/fs/cgroup/cpu")
    group = (v1 if (v1 / "cpu.cfs_quota_us").exists() else Path("/sys/fs/cgroup")) / name
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a control group here: {exc}")
    try:
        try:
            if group.parent == v1:
                (group / "cpu.cfs_period_us").write_text(str(period))
                (group / "cpu.cfs_quota_us").write_text(str(int(cpus * period)))
            else:
                (group / "cpu.max").write_text(f"{int(cpus * period)} {period}")
        except OSError as exc:
            pytest.skip(f"cannot limit a control group's CPU here: {exc}")
        yield group / "cgroup.procs"
    finally:
        for _ in range(50):  # its processes must be gone before it can be removed
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_workers_auto_counts_a_containers_cpu_limit(tmp_path: Path) -> None:
    """In a control group limited to one CPU (as ``docker run --cpus 1`` makes), ``auto``
    starts one worker, though the host has more CPUs."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a host with 2 CPUs or more")
    log = tmp_path / "supervisor.log"
    sqlite = sqlite_backend(tmp_path)
    with cpu_limited_group(1.0) as procs:
        command = [
            str(SCRIPT),
            "worker",
            *sqlite.args,
            "--queues",
            QUEUE,
            "--no-live",
            "--burst",
            "--workers",
            "auto",
        ]
        with log.open("wb") as out:
            done = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(),
                timeout=60,
                preexec_fn=lambda: procs.write_text(str(os.getpid())),
            )
    text = log.read_text()
    assert done.returncode == EXIT_OK, text
    assert "starting 1 worker process(es)" in text, text
    assert len(started_pids(log)) == 1
