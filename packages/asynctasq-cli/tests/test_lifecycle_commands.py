"""``asynctasq status|tasks|cancel|workers|events`` and ``worker --events`` in this process.

Tracked tasks are dispatched to a SQLite file of the test's own and run by a real
``asynctasq worker --burst``; the commands then read what the worker recorded.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import cli_lifecycle_tasks as lt
import pytest
from cli_lifecycle_testing import as_json, dispatch
from cli_testing import TASKS_DIR, Invoke, requires_sqlite
from rich.console import Console
from typer.testing import Result

from asynctasq.lifecycle import TaskState, TaskStatus, WorkerInfo
from asynctasq_cli.commands import events as events_command
from asynctasq_cli.commands.tasks import tasks_table
from asynctasq_cli.commands.workers import workers_table

pytestmark = requires_sqlite

HOSTILE = "bad input [/] [bold]x \x1b]0;owned\x07\x1b[2J\rgone\x00 \u202eevil \x9b31m"
"""Markup that does not balance, an OSC title change, clear-screen, CR, NUL, a bidi override
and an 8-bit CSI."""

RAW_CONTROLS = ("\x1b", "\x00", "\r", "\x07", "\u202e", "\x9b")

UNKNOWN_ID = "00000000-0000-4000-8000-00000000d00d"
OTHER_UNKNOWN_ID = "00000000-0000-4000-8000-00000000beef"
NEW_COMMANDS = ("status", "tasks", "cancel", "workers", "events")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """This test's queue database."""
    return tmp_path / "queue.db"


@pytest.fixture
def args(db: Path) -> list[str]:
    """Connection options selecting this test's database."""
    return ["--driver", "sqlite", "-o", f"path={db}"]


def burst(cli: Invoke, args: list[str], *extra: str) -> Result:
    """Run the queued tasks with ``asynctasq worker --burst``."""
    result = cli(
        "worker",
        *args,
        "--import",
        "cli_lifecycle_tasks",
        "--allowed-root",
        str(TASKS_DIR),
        "-q",
        f"{lt.QUEUE},cli-lc-other",
        "--burst",
        *extra,
    )
    assert result.exit_code == 0, result.output
    return result


def assert_no_raw_controls(text: str) -> None:
    for char in RAW_CONTROLS:
        assert char not in text, f"{char!r} written raw"


def test_help_lists_the_lifecycle_commands(cli: Invoke) -> None:
    listed = cli("--help")
    assert listed.exit_code == 0
    for command in NEW_COMMANDS:
        assert command in listed.stdout
        result = cli(command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.stdout
    worker_help = cli("worker", "--help", env={"COLUMNS": "200"}).stdout
    assert "--events" in worker_help and "--heartbeat-interval" in worker_help


def test_status_follows_a_tracked_task_through_a_worker_run(
    cli: Invoke, args: list[str], db: Path, markers: Path
) -> None:
    [task_id] = dispatch(db, lt.steps(str(markers), "s", 4))
    queued = cli("status", task_id, *args)
    assert queued.exit_code == 0, queued.output
    for text in (task_id, "queued", "cli_lifecycle_tasks:steps", lt.QUEUE, "enqueued"):
        assert text in queued.stdout, text
    assert "finished" not in queued.stdout and "worker" not in queued.stdout
    doc = as_json(cli("status", task_id, *args, "--json"))
    assert doc["state"] == "queued" and doc["attempts"] == 0
    assert doc["worker"] is None and doc["started_at"] is None and doc["enqueued_at"]

    burst(cli, args)
    assert (markers / "s").read_text() == "done\n"
    done = cli("status", task_id, *args)
    assert done.exit_code == 0, done.output
    for text in ("succeeded", "100% step 4/4", "started", "finished", "worker"):
        assert text in done.stdout, text
    doc = as_json(cli("status", task_id, *args, "--json"))
    assert doc["state"] == "succeeded" and doc["attempts"] == 1
    assert doc["progress"] == 1.0 and doc["progress_message"] == "step 4/4"
    assert doc["started_at"] and doc["finished_at"] and doc["worker"]
    assert doc["error_type"] is None and doc["cancel_requested"] is False


def test_an_unknown_id_is_a_clear_error(cli: Invoke, args: list[str]) -> None:
    unknown = "2f1e5c3a-0000-4000-8000-000000000000"
    for extra in ([], ["--json"]):
        result = cli("status", unknown, *args, *extra)
        assert result.exit_code == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"error: no status for task '{unknown}': ")
        assert "track=True" in line and result.stdout == ""


def test_status_refuses_what_is_not_a_task_id_as_cancel_does(cli: Invoke, args: list[str]) -> None:
    result = cli("status", "no-such-task", *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert "not a task id (task ids are UUIDs" in result.stderr
    # Another spelling of a task id is looked up as the id it names, as cancel does.
    spelled = cli("status", "{" + UNKNOWN_ID.upper() + "}", *args)
    assert spelled.exit_code == 1 and f"no status for task '{UNKNOWN_ID}'" in spelled.stderr


def test_tasks_lists_and_filters(cli: Invoke, args: list[str], db: Path, markers: Path) -> None:
    ids = dispatch(
        db,
        lt.steps(str(markers), "a", 1),
        lt.breaks(str(markers), "broken input"),
        lt.elsewhere(str(markers)),
        lt.steps(str(markers), "later", 1).delay(3600),
    )
    ok, broken, other, later = ids
    before = as_json(cli("tasks", *args, "--json"))
    assert {d["task_id"]: d["state"] for d in before} == {
        ok: "queued",
        broken: "queued",
        other: "queued",
        later: "scheduled",
    }
    burst(cli, args)

    table = cli("tasks", *args)
    assert table.exit_code == 0, table.output
    for text in ("task id", "state", "attempts", "progress", "error", *ids):
        assert text in table.stdout, text
    assert "ValueError: broken input" in table.stdout and "100%" in table.stdout

    failed = as_json(cli("tasks", *args, "--state", "failed", "--json"))
    assert [d["task_id"] for d in failed] == [broken]
    assert failed[0]["error_type"] == "builtins.ValueError"
    assert failed[0]["error_message"] == "broken input"
    assert [d["task_id"] for d in as_json(cli("tasks", *args, "-q", "cli-lc-other", "--json"))] == [
        other
    ]
    scheduled = as_json(cli("tasks", *args, "--state", "scheduled", "-q", lt.QUEUE, "--json"))
    assert [d["task_id"] for d in scheduled] == [later]
    succeeded = cli("tasks", *args, "--state", "succeeded", "--queue", lt.QUEUE)
    assert ok in succeeded.stdout and broken not in succeeded.stdout
    assert "Tracked tasks succeeded in 'cli-lc' on sqlite" in succeeded.stdout

    limited = cli("tasks", *args, "--limit", "1")
    assert sum(task_id in limited.stdout for task_id in ids) == 1
    assert "--limit shows more" in limited.stdout
    none = cli("tasks", *args, "--state", "running")
    assert none.exit_code == 0 and "No tracked tasks running on sqlite" in none.stdout
    bad = cli("tasks", *args, "--state", "sleeping")
    assert bad.exit_code == 2 and "sleeping" in bad.stderr


def test_a_cancelled_queued_task_is_skipped_by_the_worker(
    cli: Invoke, args: list[str], db: Path, markers: Path
) -> None:
    victim, kept, delayed = dispatch(
        db,
        lt.steps(str(markers), "victim", 1),
        lt.steps(str(markers), "kept", 1),
        lt.steps(str(markers), "delayed", 1).delay(0.2),
    )
    result = cli("cancel", victim, delayed, *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{victim}: cancelled: it will not run",
        f"{delayed}: cancelled: it will not run",
    ]
    assert as_json(cli("status", victim, *args, "--json"))["state"] == "cancelled"

    ran = burst(cli, args)
    assert "processed" in ran.stderr
    assert (markers / "kept").exists()
    assert not (markers / "victim").exists() and not (markers / "delayed").exists()
    cancelled = cli("status", victim, *args)
    assert "cancelled" in cancelled.stdout and "requested" in cancelled.stdout

    again = cli("cancel", victim, kept, UNKNOWN_ID, *args)
    assert again.exit_code == 0, again.output
    lines = again.stdout.splitlines()
    assert lines[0] == f"{victim}: already finished (cancelled): nothing changed"
    assert lines[1] == f"{kept}: already finished (succeeded): nothing changed"
    assert lines[2].startswith(f"{UNKNOWN_ID}: cancel requested (no status record")
    assert as_json(cli("cancel", kept, OTHER_UNKNOWN_ID.upper(), *args, "--json")) == [
        {"task_id": kept, "outcome": "already-finished", "state": "succeeded"},
        {"task_id": OTHER_UNKNOWN_ID, "outcome": "requested", "state": None},
    ]


def test_cancel_refuses_what_is_not_a_task_id_and_cancels_nothing(
    cli: Invoke, args: list[str], db: Path, markers: Path
) -> None:
    """A truncated copy or a typo could never match a task: saying "cancel requested" for
    it would leave the real task running while the operator thinks it stopped."""
    [task_id] = dispatch(db, lt.steps(str(markers), "kept", 1))
    result = cli("cancel", task_id, task_id[:23], "not-an-id", *args)
    assert result.exit_code == 2
    assert (
        f"not a task id (task ids are UUIDs, as dispatch() returns): {task_id[:23]}, "
        "not-an-id; nothing was cancelled"
    ) in result.stderr
    burst(cli, args)
    assert (markers / "kept").exists()


def test_cancel_needs_an_id(cli: Invoke, args: list[str]) -> None:
    result = cli("cancel", *args)
    assert result.exit_code == 2 and "TASK_ID" in result.stderr


def test_hostile_error_messages_are_shown_literally(
    cli: Invoke, args: list[str], db: Path, markers: Path
) -> None:
    [task_id] = dispatch(db, lt.breaks(str(markers), HOSTILE))
    burst(cli, args)

    shown = cli("status", task_id, *args)
    assert shown.exit_code == 0, shown.output
    assert "failed" in shown.stdout
    assert "bad input [/] [bold]x" in shown.stdout and "\\x1b[2J" in shown.stdout
    assert "\\u202eevil" in shown.stdout and "\\x9b31m" in shown.stdout
    assert_no_raw_controls(shown.stdout)

    listed = cli("tasks", *args, "--state", "failed")
    assert listed.exit_code == 0, listed.output
    assert "ValueError: bad input [/] [bold]x" in listed.stdout
    assert_no_raw_controls(listed.stdout)

    for command in (["status", task_id], ["tasks"]):
        raw = cli(*command, *args, "--json")
        assert_no_raw_controls(raw.stdout)  # JSON escapes them
        doc = json.loads(raw.stdout)
        record = doc if isinstance(doc, dict) else doc[0]
        assert record["error_message"] == HOSTILE


def test_workers_when_none_are_running(cli: Invoke, args: list[str]) -> None:
    result = cli("workers", *args)
    assert result.exit_code == 0, result.output
    assert "No live workers on sqlite" in result.stdout
    assert as_json(cli("workers", *args, "--json")) == []


def test_worker_banner_says_whether_events_are_on(
    cli: Invoke, memory_args: list[str], tmp_path: Path
) -> None:
    off = cli("worker", *memory_args, "--burst")
    assert off.exit_code == 0, off.output
    assert "; events off" in off.stderr.splitlines()[0]
    on = cli("worker", *memory_args, "--burst", "--events", "--log-format", "json")
    assert on.exit_code == 0, on.output
    started = json.loads(on.stderr.splitlines()[0])
    assert started["event"] == "worker_started" and started["events"] is True
    assert started["heartbeat_interval"] == 5.0 and "; events on" in started["message"]
    from_env = cli("worker", *memory_args, "--burst", env={"ASYNCTASQ_EVENTS_ENABLED": "true"})
    assert "; events on" in from_env.stderr.splitlines()[0]
    refused = cli(
        "worker", *memory_args, "--burst", "--no-events", env={"ASYNCTASQ_EVENTS_ENABLED": "1"}
    )
    assert "; events off" in refused.stderr.splitlines()[0]


def test_heartbeat_interval_reaches_the_worker_and_is_checked(
    cli: Invoke, memory_args: list[str]
) -> None:
    result = cli(
        "worker", *memory_args, "--burst", "--heartbeat-interval", "0.5", "--log-format", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stderr.splitlines()[0])["heartbeat_interval"] == 0.5
    zero = cli("worker", *memory_args, "--burst", "--heartbeat-interval", "0")
    assert zero.exit_code == 2
    assert "heartbeat_interval must be greater than 0" in zero.stderr


def test_events_stops_quietly_on_ctrl_c(
    cli: Invoke, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(events_command, "follow", interrupted)
    result = cli("events", *args)
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""


def test_events_rejects_an_unknown_type(cli: Invoke, args: list[str]) -> None:
    result = cli("events", *args, "--type", "task-exploded")
    assert result.exit_code == 2 and "task-exploded" in result.stderr


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["status", UNKNOWN_ID], "SQSDriver cannot track task status"),
        (["tasks"], "SQSDriver cannot track task status"),
        (["cancel", UNKNOWN_ID], "SQSDriver keeps no event stream"),
        (["workers"], "SQSDriver keeps no worker registry"),
        (["events"], "SQSDriver keeps no event stream"),
    ],
)
def test_a_driver_without_the_capability_is_a_usage_error(
    cli: Invoke, command: list[str], message: str
) -> None:
    pytest.importorskip("asynctasq_sqs")
    # Connecting the SQS driver sends no request: the command is refused before any.
    result = cli(*command, "--driver", "sqs", "-o", "region_name=us-east-1")
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}; use a driver that")
    # The advice names the installed drivers that have the capability, asked of the classes.
    assert "(mysql, postgres, redis, sqlite)" in line and "Traceback" not in result.output


def _render(renderable: object, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, highlight=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_tables_fit_a_narrow_terminal_and_show_worker_records_literally() -> None:
    now = datetime.now(UTC)
    failed = TaskStatus(
        task_id="0b7f6c1e-2b4a-4c7e-9a51-3f0d8e6b2a10",
        state=TaskState.FAILED,
        task_name="app.tasks:import_file",
        queue="imports",
        attempts=3,
        enqueued_at=now,
        finished_at=now,
        error_type="builtins.ValueError",
        error_message="unsupported",
    )
    narrow = _render(tasks_table([failed], "Tracked tasks"), 80)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    for text in ("task id", "state", "progress", "error", "ValueErr", "unsupport"):
        assert text in narrow, text
    info = WorkerInfo(
        worker_id=f"evil:{HOSTILE}",
        host=HOSTILE,
        pid=4242,
        queues=("[/]", "emails"),
        concurrency=8,
        version="1",
        started_at=now,
        heartbeat_at=now,
        running=tuple(f"task-{n}" for n in range(7)),
        processed=12,
        failed=2,
    )
    shown = _render(workers_table([info], "Live workers"), 80)
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert_no_raw_controls(shown)
    for text in ("[/], emails", "pid 4242", "7/8", "task-4", "and 2 more", "2 failed"):
        assert text in shown, text
    assert "task-5" not in shown
