"""``asynctasq worker`` in this process (memory queues, --burst): every option takes effect."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cli_test_tasks as t
import pytest
from cli_testing import TASKS_DIR, Invoke, enqueue, lines, requires_sqlite

from asynctasq.testing import MemoryDriver


def depth(driver: MemoryDriver, queue: str) -> tuple[int, int, int, int]:
    import asyncio

    [s] = asyncio.run(driver.stats([queue]))
    return s.ready, s.delayed, s.in_flight, s.dead


def test_burst_runs_the_queued_tasks_and_exits(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    enqueue(memory, [t.record(str(markers), "r") for _ in range(3)])
    result = cli("worker", *memory_args, "--queues", "cli-a", "--burst")
    assert result.exit_code == 0, result.output
    assert lines(markers / "r") == ["ran"] * 3
    assert depth(memory, "cli-a") == (0, 0, 0, 0)
    assert "processed 3, succeeded 3" in result.stderr


def test_queues_option_limits_what_is_served(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    enqueue(
        memory,
        [
            t.record(str(markers), "a").on_queue("qa"),
            t.record(str(markers), "b").on_queue("qb"),
            t.record(str(markers), "c").on_queue("qc"),
        ],
    )
    result = cli("worker", *memory_args, "--queues", "qa,qb", "--burst")
    assert result.exit_code == 0, result.output
    assert lines(markers / "a") == ["ran"] and lines(markers / "b") == ["ran"]
    assert not (markers / "c").exists()
    assert depth(memory, "qc") == (1, 0, 0, 0)
    # repeated -q works too
    result = cli("worker", *memory_args, "-q", "qx", "-q", "qc", "--burst")
    assert result.exit_code == 0, result.output
    assert lines(markers / "c") == ["ran"]


def test_queues_from_the_environment(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    enqueue(memory, [t.record(str(markers), "e").on_queue("from-env")])
    result = cli("worker", *memory_args, "--burst", env={"ASYNCTASQ_WORKER_QUEUES": "from-env"})
    assert result.exit_code == 0, result.output
    assert lines(markers / "e") == ["ran"]


def test_concurrency_caps_tasks_running_at_once(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    enqueue(memory, [t.probe(str(markers), 0.15) for _ in range(9)])
    result = cli("worker", *memory_args, "-q", "cli-a", "--concurrency", "3", "--burst")
    assert result.exit_code == 0, result.output
    assert len(lines(markers / "probe")) == 9
    assert t.most_running == 3
    t.most_running = 0
    enqueue(memory, [t.probe(str(markers), 0.15) for _ in range(4)])
    result = cli("worker", *memory_args, "-q", "cli-a", "-c", "1", "--burst")
    assert result.exit_code == 0, result.output
    assert t.most_running == 1


def test_concurrency_option_beats_set_and_environment(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    enqueue(memory, [t.probe(str(markers), 0.1) for _ in range(6)])
    result = cli(
        "worker",
        *memory_args,
        "-q",
        "cli-a",
        "--set",
        "worker.concurrency=6",
        "--concurrency",
        "2",
        "--burst",
        env={"ASYNCTASQ_WORKER_CONCURRENCY": "5"},
    )
    assert result.exit_code == 0, result.output
    assert t.most_running == 2
    assert "concurrency 2 " in result.stderr


def test_thread_pool_size(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    enqueue(memory, [t.sync_thread(str(markers), 0.05) for _ in range(4)])
    result = cli("worker", *memory_args, "-q", "cli-a", "--thread-pool-size", "1", "--burst")
    assert result.exit_code == 0, result.output
    names = lines(markers / "threads")
    assert len(names) == 4
    assert len(set(names)) == 1


@pytest.mark.slow
def test_process_pool_size_and_max_tasks_per_child(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    roots = ["--allowed-root", str(TASKS_DIR)]
    enqueue(memory, [t.in_process(str(markers)) for _ in range(4)])
    result = cli(
        "worker", *memory_args, *roots, "-q", "cli-a", "--process-pool-size", "1", "--burst"
    )
    assert result.exit_code == 0, result.output
    pids = lines(markers / "pids")
    assert len(pids) == 4 and len(set(pids)) == 1
    (markers / "pids").unlink()
    enqueue(memory, [t.in_process(str(markers)) for _ in range(3)])
    result = cli(
        "worker",
        *memory_args,
        *roots,
        "-q",
        "cli-a",
        "--process-pool-size",
        "1",
        "--process-max-tasks-per-child",
        "1",
        "--burst",
    )
    assert result.exit_code == 0, result.output
    pids = lines(markers / "pids")
    assert len(pids) == 3 and len(set(pids)) == 3


def test_import_happens_after_the_allowed_roots_are_on_sys_path(
    cli: Invoke, memory_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "app_code"
    code.mkdir()
    (code / "cli_private_tasks.py").write_text(
        "from pathlib import Path\nimport os\n"
        "Path(os.environ['CLI_TEST_IMPORT_MARKER']).write_text('imported')\n"
    )
    marker = tmp_path / "imported.txt"
    monkeypatch.setenv("CLI_TEST_IMPORT_MARKER", str(marker))
    assert str(code) not in sys.path
    result = cli(
        "worker",
        *memory_args,
        "--burst",
        "--allowed-root",
        str(code),
        "--import",
        "cli_private_tasks",
        "--log-level",
        "debug",
    )
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "imported"
    assert "imported cli_private_tasks" in result.stderr
    assert str(code) not in sys.path  # the CLI put it back as it was
    sys.modules.pop("cli_private_tasks", None)


def test_imports_from_the_environment(
    cli: Invoke, memory_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported.txt"
    monkeypatch.setenv("CLI_TEST_IMPORT_MARKER", str(marker))
    sys.modules.pop("cli_import_marker", None)
    result = cli(
        "worker",
        *memory_args,
        "--burst",
        env={
            "ASYNCTASQ_WORKER_IMPORTS": "cli_import_marker",
            "ASYNCTASQ_WORKER_ALLOWED_ROOTS": str(TASKS_DIR),
        },
    )
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "imported\n"
    sys.modules.pop("cli_import_marker", None)


def test_a_failing_import_is_one_line_and_exit_1(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("worker", *memory_args, "--burst", "--import", "no_such_module_xyz")
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: --import 'no_such_module_xyz' failed: ModuleNotFoundError")
    )
    assert "Traceback" not in result.output


def test_allowed_root_decides_where_task_code_may_come_from(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path, tmp_path: Path
) -> None:
    # The default root is the working directory (tmp/work): the tasks' directory is not in it.
    # The test process has the module imported already, so hide it from the registry first.
    import asynctasq.core.registry as registry

    saved = dict(registry._tasks)
    saved_module = sys.modules.pop("cli_test_tasks")
    sys.path.remove(str(TASKS_DIR))
    try:
        registry._tasks.clear()
        [refused_id] = enqueue(memory, [t.record(str(markers), "outside")])
        result = cli("worker", *memory_args, "-q", "cli-a", "--burst")
        assert result.exit_code == 0, result.output
        assert not (markers / "outside").exists()
        # Never run. Not importable from the roots may be a worker started in the wrong place
        # (or deploy skew): retried later, so a correctly placed worker can take it.
        assert depth(memory, "cli-a")[1:] == (1, 0, 0)  # delayed for its retry, not dead
        assert refused_id in result.stderr
        assert "not importable from the allowed roots" in result.stderr
        enqueue(memory, [t.record(str(markers), "inside")])
        result = cli(
            "worker", *memory_args, "-q", "cli-a", "--burst", "--allowed-root", str(TASKS_DIR)
        )
        assert result.exit_code == 0, result.output
        assert lines(markers / "inside") == ["ran"]
    finally:
        registry._tasks.update(saved)
        sys.modules["cli_test_tasks"] = saved_module
        if str(TASKS_DIR) not in sys.path:
            sys.path.insert(0, str(TASKS_DIR))


def test_allowed_root_must_exist(cli: Invoke, memory_args: list[str], tmp_path: Path) -> None:
    result = cli("worker", *memory_args, "--burst", "--allowed-root", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "not a directory" in result.stderr


def test_log_level(cli: Invoke, memory_args: list[str]) -> None:
    quiet = cli("worker", *memory_args, "--burst", "--log-level", "warning")
    assert quiet.exit_code == 0, quiet.output
    assert "starting" not in quiet.stderr and "worker stopped" not in quiet.stderr
    loud = cli("worker", *memory_args, "--burst", "-l", "INFO")
    assert "asynctasq worker" in loud.stderr and "worker stopped" in loud.stderr
    from_env = cli("worker", *memory_args, "--burst", env={"ASYNCTASQ_LOG_LEVEL": "error"})
    assert from_env.exit_code == 0 and "worker stopped" not in from_env.stderr
    bad = cli("worker", *memory_args, "--burst", "--log-level", "chatty")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == (
        "error: --log-level: unknown log level 'chatty'; use one of debug, info, warning, "
        "error, critical"
    )


def test_log_format_json(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    enqueue(memory, [t.fail(str(markers), "nope")])
    result = cli("worker", *memory_args, "-q", "cli-a", "--burst", "--log-format", "json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]
    started = next(r for r in records if r.get("event") == "worker_started")
    assert started["queues"] == ["cli-a"] and started["driver"].startswith("memory")
    assert started["concurrency"] == 10 and started["version"]
    assert any(r["level"] == "warning" and "failed for good" in r["message"] for r in records)
    assert {"time", "level", "logger", "message"} <= set(records[0])
    bad = cli("worker", *memory_args, "--burst", "--log-format", "xml")
    assert bad.exit_code == 2 and "--log-format" in bad.stderr


def test_plain_logs_when_not_a_terminal(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("worker", *memory_args, "--burst")
    first = result.stderr.splitlines()[0]
    assert " INFO    asynctasq.cli: asynctasq worker " in first
    assert "\x1b[" not in result.stderr  # no colour codes, no live line


@requires_sqlite
def test_banner_says_once_that_sqlite_is_the_embedded_default(cli: Invoke) -> None:
    result = cli("worker", "--burst")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("embedded default") == 1
    assert "driver sqlite (embedded default: no driver configured" in result.stderr
    assert Path("asynctasq.db").exists()
    assert f"; file {Path('asynctasq.db').absolute()})" in result.stderr  # which file it opened
    configured = cli("worker", "--burst", "--driver", "sqlite")
    assert "embedded default" not in configured.stderr


def test_live_status_line_on_a_terminal(
    cli: Invoke,
    memory: MemoryDriver,
    memory_args: list[str],
    markers: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "160")
    enqueue(memory, [t.record(str(markers), "live"), t.fail(str(markers), "x")])
    result = cli("worker", *memory_args, "-q", "cli-a", "--burst")
    assert result.exit_code == 0, result.output
    out = result.stderr
    assert "AsyncTasQ worker" in out and "cli-a" in out
    assert "processed" in out and "retried" in out and "dead" in out and "running" in out
    assert "\x1b[" in out  # rich rendering
    no_live = cli("worker", *memory_args, "--burst", "--no-live")
    assert "running" not in no_live.stderr


@requires_sqlite
def test_set_and_driver_option_reach_the_driver(cli: Invoke, markers: Path, tmp_path: Path) -> None:
    from asynctasq_sqlite import SqliteDriver

    db = tmp_path / "queue.db"
    enqueue(SqliteDriver(path=str(db)), [t.record(str(markers), "s")])
    result = cli(
        "worker", "--driver", "sqlite", "--set", f"sqlite.path={db}", "-q", "cli-a", "--burst"
    )
    assert result.exit_code == 0, result.output
    assert lines(markers / "s") == ["ran"]
    enqueue(SqliteDriver(path=str(db)), [t.record(str(markers), "o")])
    result = cli("worker", "-d", "sqlite", "-o", f"path={db}", "-q", "cli-a", "--burst")
    assert result.exit_code == 0, result.output
    assert lines(markers / "o") == ["ran"]
    assert not Path("asynctasq.db").exists()  # the default file was never used


def test_bad_option_values_are_one_line_usage_errors(cli: Invoke) -> None:
    for args, fragment in [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "many"], "--concurrency"),
        (["--shutdown-timeout", "-1"], "--shutdown-timeout"),
        (["--process-pool-size", "0"], "--process-pool-size"),
        (["--queues", " , "], "--queues"),
        (["--set", "nodot"], "nodot"),
        (["--driver-option", "novalue"], "--driver-option"),
    ]:
        result = cli("worker", "--burst", "--driver", "memory", *args)
        assert result.exit_code == 2, (args, result.output)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and fragment in line, line


def test_settings_from_the_environment_are_validated(cli: Invoke) -> None:
    result = cli("worker", "--burst", "-d", "memory", env={"ASYNCTASQ_WORKER_CONCURRENCY": "0"})
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "concurrency" in line


def test_unknown_driver_says_what_to_install(cli: Invoke, without_driver: None) -> None:
    result = cli("worker", "--driver", "redis")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: driver 'redis' is not installed: pip install asynctasq-redis")


def test_unreachable_broker_is_one_line_with_the_url_masked(cli: Invoke) -> None:
    pytest.importorskip("asynctasq_redis")
    result = cli(
        "worker", "--driver", "redis", "-o", "url=redis://:hunter2@127.0.0.1:1/0", "--burst"
    )
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot connect to redis (url=redis://:***@127.0.0.1:1/0)")
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(cli: Invoke) -> None:
    result = cli("--debug", "worker", "-d", "memory", "--burst", "--import", "no_such_module_xyz")
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert "no_such_module_xyz" in str(result.exception)


def test_stuck_task_threads_and_exit_process() -> None:
    import threading

    from asynctasq.executors.threads import TASK_THREAD_PREFIX
    from asynctasq_cli.commands import worker as worker_command

    release = threading.Event()
    thread = threading.Thread(target=release.wait, name=f"{TASK_THREAD_PREFIX}_99")
    thread.start()
    try:
        assert worker_command.stuck_task_threads(0.1) == [f"{TASK_THREAD_PREFIX}_99"]
    finally:
        release.set()
        thread.join()
    assert worker_command.stuck_task_threads(0.1) == []
    with pytest.raises(SystemExit) as exit_info:
        worker_command.exit_process(3)
    assert exit_info.value.code == 3
