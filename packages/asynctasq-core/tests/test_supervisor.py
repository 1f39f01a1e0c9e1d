"""`asynctasq.supervisor`: sizing, the restart policy, and a `Supervisor` in a real process
(children that finish, crash at start, never drain, or drain on SIGTERM)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asynctasq.supervisor import (
    CHILD_VARIABLE,
    CHILDREN_VARIABLE,
    EXIT_CRASH_LOOP,
    EXIT_FORCED_BASE,
    EXIT_OK,
    EXIT_UNCLEAN,
    RestartPolicy,
    Supervisor,
    cpu_count,
    describe_exit,
    parse_workers,
    process_pool_share,
    supervised_pool_size,
)

SCRIPT = Path(__file__).resolve().parent / "supervisor_script.py"


def test_workers_are_a_count_or_auto() -> None:
    assert parse_workers("auto") == parse_workers(" AUTO ") == cpu_count() >= 1
    assert parse_workers("3") == parse_workers(3) == 3
    for bad in ("0", "-1", "two", "", "1.5", 0, True):
        with pytest.raises(ValueError, match="whole number >= 1 or 'auto'"):
            parse_workers(bad)


def test_each_worker_gets_its_share_of_the_cpus_for_its_pool() -> None:
    assert process_pool_share(1, cpus=8) == 8
    assert process_pool_share(2, cpus=8) == 4
    assert process_pool_share(3, cpus=8) == 2
    assert process_pool_share(4, cpus=2) == 1  # never 0


def test_the_pool_share_applies_only_under_a_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHILD_VARIABLE, raising=False)
    monkeypatch.setenv(CHILDREN_VARIABLE, "2")
    assert supervised_pool_size() is None
    monkeypatch.setenv(CHILD_VARIABLE, "1")
    assert supervised_pool_size() == max(1, cpu_count() // 2)


def test_restarts_back_off_and_a_run_of_quick_deaths_is_a_crash_loop() -> None:
    policy = RestartPolicy(backoff=0.5, max_backoff=3.0, max_quick_deaths=3, min_uptime=60)
    assert [policy.delay(n) for n in range(6)] == [0.5, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.is_quick(59.9) and not policy.is_quick(60)
    assert not policy.is_crash_loop(2) and policy.is_crash_loop(3)
    with pytest.raises(ValueError, match="max_quick_deaths"):
        RestartPolicy(max_quick_deaths=0)
    with pytest.raises(ValueError, match="backoff"):
        RestartPolicy(backoff=float("nan"))


def test_bad_supervisor_settings_are_named() -> None:
    with pytest.raises(ValueError, match="workers must be"):
        Supervisor(lambda n: 0, 0)
    with pytest.raises(ValueError, match="shutdown_timeout"):
        Supervisor(lambda n: 0, 1, shutdown_timeout=-1)


def test_exits_are_described() -> None:
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(-9) == "was killed by SIGKILL"


def start(mode: str, marks: Path, *shutdown_timeout: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, str(marks), *shutdown_timeout],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str], within: float = 60) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=within)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out


def read_until(proc: subprocess.Popen[str], text: str, within: float = 60) -> str:
    """The output read until it contains `text` (read from the pipe itself, unbuffered, so
    `finish` later gets the rest)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + within
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"no {text!r} within {within} s: {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"the supervisor ended before {text!r}: {seen!r}"
            seen += chunk
    return seen.decode()


def wait_for(marks: Path, pattern: str, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while len(list(marks.glob(pattern))) < count:
        assert proc.poll() is None, finish(proc)[1]
        assert time.monotonic() < deadline, f"no {count} x {pattern}"
        time.sleep(0.02)


def test_children_that_finish_end_the_supervisor_with_0(tmp_path: Path) -> None:
    code, out = finish(start("done", tmp_path))
    assert code == EXIT_OK, out
    seen = sorted(p.read_text().split()[:3] for p in tmp_path.glob("child-*"))
    assert seen == [["1", "1", "3"], ["2", "2", "3"], ["3", "3", "3"]]  # each knows its number
    assert "every worker process finished its work" in out


def test_a_crash_loop_is_reported_and_ends_with_its_exit_code(tmp_path: Path) -> None:
    code, out = finish(start("crash", tmp_path))
    assert code == EXIT_CRASH_LOOP, out
    assert "crash loop: worker" in out and "died 5 times in a row within 60 s" in out
    assert "RuntimeError: worker" in out  # the child's own traceback
    assert "starting it again" in out  # it was restarted before giving up
    assert out.strip().endswith(f"exit={EXIT_CRASH_LOOP}")


def test_workers_killed_while_running_tasks_are_no_crash_loop(tmp_path: Path) -> None:
    # A task that kills its worker (or the system, for memory) is not a set-up that fails
    # at every start: the supervisor keeps starting the worker; the task's own attempt
    # limit ends a task that keeps doing it.
    proc = start("poisoned", tmp_path)
    wait_for(tmp_path, "ready-*", 3, proc)
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == EXIT_OK, out
    assert len(list(tmp_path.glob("killed-*"))) == 18  # six deaths in a row for each
    assert "crash loop" not in out
    assert out.count("was killed by SIGKILL") == 18 and "while running tasks" in out


def test_sigterm_drains_the_children_and_exits_0(tmp_path: Path) -> None:
    proc = start("wait", tmp_path)
    wait_for(tmp_path, "ready-*", 3, proc)
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == EXIT_OK, out
    assert out.count("exited with code 0") == 3
    assert "starting it again" not in out


def test_a_child_that_never_drains_is_killed_at_the_deadline(tmp_path: Path) -> None:
    proc = start("stuck", tmp_path, "0.2")
    wait_for(tmp_path, "ready-*", 3, proc)
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code == EXIT_UNCLEAN, out
    assert out.count("after its shutdown deadline: SIGKILL") == 3


def test_a_second_signal_stops_everything_at_once(tmp_path: Path) -> None:
    proc = start("stuck", tmp_path)
    wait_for(tmp_path, "ready-*", 3, proc)
    proc.send_signal(signal.SIGINT)
    # Two signals sent back to back may be delivered as one: send the second once the
    # supervisor has acted on the first.
    seen = read_until(proc, "send again to stop them now")
    proc.send_signal(signal.SIGINT)
    code, rest = finish(proc)
    out = seen + rest
    assert code == EXIT_FORCED_BASE + signal.SIGINT, out
    assert "second SIGINT: stopping every worker process now" in out
    assert "after its shutdown deadline" not in out


def test_a_killed_child_is_started_again(tmp_path: Path) -> None:
    proc = start("wait", tmp_path)
    wait_for(tmp_path, "ready-*", 3, proc)
    victim = int(next(tmp_path.glob("child-2-*")).name.rsplit("-", 1)[1])
    os.kill(victim, signal.SIGKILL)
    wait_for(tmp_path, "child-2-*", 2, proc)
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == EXIT_OK, out
    assert f"worker 2 (pid {victim}) was killed by SIGKILL" in out


def test_the_supervisor_variables_are_not_taken_for_misspelt_settings(tmp_path: Path) -> None:
    from asynctasq.config import stray_variables

    names = ("ASYNCTASQ_WORKERS", CHILD_VARIABLE, CHILDREN_VARIABLE)
    assert stray_variables(tmp_path / ".env", environ=dict.fromkeys(names, "2")) == []
