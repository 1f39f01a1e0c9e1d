"""``asynctasq dead-letters list|show|retry|purge``."""

from __future__ import annotations

import asyncio
import json

import pytest
from cli_testing import Invoke, make_dead_letters, stats

from asynctasq.lifecycle import control
from asynctasq.lifecycle.status import TaskState, TaskStatus
from asynctasq.testing import MemoryDriver
from asynctasq_cli import bulk


def test_list_table_and_json(cli: Invoke, memory: MemoryDriver, memory_args: list[str]) -> None:
    ids = make_dead_letters(memory, "emails", 2) + make_dead_letters(memory, "reports", 1)
    result = cli("dead-letters", "list", *memory_args)
    assert result.exit_code == 0, result.output
    for task_id in ids:
        assert task_id in result.stdout
    assert "cli_test_tasks:fail" in result.stdout and "RuntimeError: boom" in result.stdout
    data = json.loads(cli("dead-letters", "list", *memory_args, "--json").stdout)
    assert [d["task_id"] for d in data] == ids
    assert data[0]["queue"] == "emails" and data[0]["task"] == "cli_test_tasks:fail"
    assert data[0]["error"]["type"] == "builtins.RuntimeError"
    only = json.loads(cli("dead-letters", "list", *memory_args, "-q", "reports", "--json").stdout)
    assert [d["task_id"] for d in only] == ids[2:]
    limited = cli("dead-letters", "list", *memory_args, "--limit", "1")
    assert ids[0] in limited.stdout and ids[1] not in limited.stdout
    assert "--limit shows more" in limited.stdout


def test_list_empty(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("dead-letters", "list", *memory_args)
    assert result.exit_code == 0
    assert "No dead letters on memory" in result.stdout


def test_show(cli: Invoke, memory: MemoryDriver, memory_args: list[str]) -> None:
    [task_id] = make_dead_letters(memory, "emails", 1)
    result = cli("dead-letters", "show", task_id, *memory_args)
    assert result.exit_code == 0, result.output
    for text in (
        task_id,
        "cli_test_tasks:fail",
        "emails",
        "builtins.RuntimeError",
        "Traceback: boom",
        '"boom 0"',
    ):
        assert text in result.stdout, text
    data = json.loads(cli("dead-letters", "show", task_id, *memory_args, "--json").stdout)
    assert data["args"] == ["/tmp", "boom 0"] and data["kwargs"] == {}
    assert data["error"]["traceback"] == "Traceback: boom"
    assert data["max_attempts"] == 1
    missing = cli("dead-letters", "show", "nope", *memory_args)
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "error: no dead letter with task id 'nope'"


def test_retry_by_id(cli: Invoke, memory: MemoryDriver, memory_args: list[str]) -> None:
    ids = make_dead_letters(memory, "emails", 3)
    result = cli("dead-letters", "retry", ids[0], ids[2], *memory_args)
    assert result.exit_code == 0, result.output
    assert "Retried 2 dead letter(s) with the given id(s)." in result.stdout
    assert stats(memory, "emails") == (2, 0, 0, 1)


def test_retry_by_queue_and_all(cli: Invoke, memory: MemoryDriver, memory_args: list[str]) -> None:
    make_dead_letters(memory, "emails", 2)
    make_dead_letters(memory, "reports", 3)
    result = cli("dead-letters", "retry", "--queue", "reports", *memory_args)
    assert result.exit_code == 0, result.output
    assert "Retried 3 dead letter(s) in queue 'reports'." in result.stdout
    assert stats(memory, "reports") == (3, 0, 0, 0)
    assert stats(memory, "emails") == (0, 0, 0, 2)
    result = cli("dead-letters", "retry", "--all", *memory_args)
    assert "Retried 2 dead letter(s) in every queue." in result.stdout
    assert stats(memory, "emails") == (2, 0, 0, 0)


def test_retry_reports_unknown_ids(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str]
) -> None:
    [task_id] = make_dead_letters(memory, "emails", 1)
    result = cli("dead-letters", "retry", task_id, "nope", *memory_args)
    assert result.exit_code == 1
    assert "Retried 1 dead letter(s)" in result.stdout
    assert result.stderr.strip() == "error: 1 task id(s) are not dead letters: nope"


@pytest.mark.parametrize("command", ["retry", "purge"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say which dead letters: task ids, --queue QUEUE or --all"),
        (["abc", "--all"], "give task ids or --all, not both"),
    ],
)
def test_retry_and_purge_need_a_selection(
    cli: Invoke, memory_args: list[str], command: str, args: list[str], message: str
) -> None:
    yes = ["--yes"] if command == "purge" else []
    result = cli("dead-letters", command, *args, *memory_args, *yes)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: {message}"


def test_purge(cli: Invoke, memory: MemoryDriver, memory_args: list[str]) -> None:
    ids = make_dead_letters(memory, "emails", 3)
    make_dead_letters(memory, "reports", 2)
    refused = cli("dead-letters", "purge", "--all", *memory_args)
    assert refused.exit_code == 2
    assert "confirm with --yes" in refused.stderr
    result = cli("dead-letters", "purge", ids[0], *memory_args, "--yes")
    assert "Purged 1 dead letter(s)" in result.stdout
    assert stats(memory, "emails") == (0, 0, 0, 2)
    result = cli("dead-letters", "purge", "--queue", "emails", *memory_args, "-y")
    assert "Purged 2 dead letter(s) in queue 'emails'." in result.stdout
    result = cli("dead-letters", "purge", "--all", *memory_args, "-y")
    assert "Purged 2 dead letter(s) in every queue." in result.stdout
    assert stats(memory, "reports") == (0, 0, 0, 0)


def test_many_in_batches_with_a_progress_bar(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BATCH_SIZE", 40)
    make_dead_letters(memory, "bulk", 130)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    result = cli("dead-letters", "retry", "--queue", "bulk", *memory_args)
    assert result.exit_code == 0, result.output
    assert "Retried 130 dead letter(s) in queue 'bulk'." in result.stdout
    assert "Retrying dead letters" in result.stderr and "130/130" in result.stderr
    assert stats(memory, "bulk") == (130, 0, 0, 0)
    monkeypatch.delenv("TTY_COMPATIBLE")
    make_dead_letters(memory, "bulk2", 90)
    plain = cli("dead-letters", "purge", "--all", *memory_args, "--yes")
    assert "Purged 90 dead letter(s)" in plain.stdout
    assert plain.stderr == ""  # no progress bar when not on a terminal


def test_bulk_stops_at_the_counted_total(
    memory: MemoryDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Letters dead-lettered while a retry runs are left for the next run (no endless loop)."""
    import asyncio

    monkeypatch.setattr(bulk, "BATCH_SIZE", 2)
    make_dead_letters(memory, "loop", 5)
    progress: list[int] = []

    async def main() -> int:
        async def retry_and_fail_again(**kwargs: object) -> int:
            moved = await memory.retry_dead_letters(**kwargs)  # type: ignore[arg-type]
            # a worker picks them up and they fail again at once
            from asynctasq.drivers.base import Failure

            for d in await memory.dequeue(["loop"], limit=moved, wait=0):
                await memory.dead_letter(d, Failure("E", "again", ""))
            return moved

        return await bulk.apply(
            memory, retry_and_fail_again, bulk.Selection(queue="loop"), 5, progress.append
        )

    assert asyncio.run(main()) == 5
    assert sum(progress) == 5


def test_a_retried_tracked_task_reads_queued(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str]
) -> None:
    """Not `failed` until a worker takes it again."""
    [task_id] = make_dead_letters(memory, "emails", 1)
    failed = TaskStatus(
        task_id, TaskState.FAILED, "t:fail", "emails", attempts=3, error_type="builtins.E"
    )
    asyncio.run(memory.write_statuses([control.write_for(failed, 60)]))
    result = cli("dead-letters", "retry", task_id, *memory_args)
    assert result.exit_code == 0, result.output
    status = cli("status", task_id, "--json", *memory_args)
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    assert (shown["state"], shown["attempts"], shown["error_type"]) == ("queued", 0, None)
