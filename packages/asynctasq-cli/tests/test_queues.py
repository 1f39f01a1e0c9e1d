"""``asynctasq queues`` and ``asynctasq purge``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cli_test_tasks as t
import pytest
from cli_testing import Invoke, enqueue, make_dead_letters, requires_redis_driver, stats

from asynctasq.core import expired_counts
from asynctasq.testing import MemoryDriver
from asynctasq_cli import output


def seed(memory: MemoryDriver, markers: Path, *, expired: int = 0) -> None:
    enqueue(memory, [t.record(str(markers), "x").on_queue("emails") for _ in range(3)])
    enqueue(memory, [t.record(str(markers), "x").on_queue("emails").delay(60)])
    enqueue(memory, [t.record(str(markers), "x").on_queue("reports")])
    make_dead_letters(memory, "reports", 2)
    if expired:  # what workers add when tasks of "reports" expire before they start
        asyncio.run(expired_counts.add_expired(memory, "reports", expired))


def test_queues_table(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    seed(memory, markers)
    result = cli("queues", *memory_args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("queue", "ready", "delayed", "in flight", "dead", "expired", "total"):
        assert header in out
    emails = next(line for line in out.splitlines() if "emails" in line)
    assert [c for c in emails.replace("│", " ").split() if c.isdigit()] == ["3", "1", "0", "0", "0"]
    reports = next(line for line in out.splitlines() if "reports" in line)
    assert [c for c in reports.replace("│", " ").split() if c.isdigit()] == [
        "1",
        "0",
        "0",
        "2",
        "0",
    ]


def test_queues_count_expired_tasks(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    seed(memory, markers, expired=5)
    out = cli("queues", *memory_args).stdout
    reports = next(line for line in out.splitlines() if "reports" in line)
    assert [c for c in reports.replace("│", " ").split() if c.isdigit()][-1] == "5"
    total = next(line for line in out.splitlines() if "total" in line)
    assert total.replace("│", " ").split()[-1] == "5"
    rows = json.loads(cli("queues", *memory_args, "--json").stdout)
    assert [r["expired"] for r in rows] == [0, 5]


def test_queues_json(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    seed(memory, markers)
    result = cli("queues", *memory_args, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"queue": "emails", "ready": 3, "delayed": 1, "in_flight": 0, "dead": 0, "expired": 0},
        {"queue": "reports", "ready": 1, "delayed": 0, "in_flight": 0, "dead": 2, "expired": 0},
    ]


def test_queues_named(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    seed(memory, markers)
    result = cli("queues", *memory_args, "reports", "unknown", "--json")
    assert [q["queue"] for q in json.loads(result.stdout)] == ["reports", "unknown"]


def test_queues_when_there_are_none(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("queues", *memory_args)
    assert result.exit_code == 0
    assert "No queues on memory" in result.stdout
    assert json.loads(cli("queues", *memory_args, "--json").stdout) == []


@requires_redis_driver
def test_queues_unreachable_broker(cli: Invoke) -> None:
    result = cli(
        "queues",
        "--driver",
        "redis",
        "--set",
        "redis.url=redis://127.0.0.1:1/0",
        "--set",
        "redis.retry_attempts=0",
    )
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot connect to redis")


def test_purge_queue(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    seed(memory, markers)
    result = cli("purge", "emails", *memory_args, "--yes")
    assert result.exit_code == 0, result.output
    assert "Purged 4 message(s) from 'emails'" in result.stdout
    assert stats(memory, "emails") == (0, 0, 0, 0)
    assert stats(memory, "reports") == (1, 0, 0, 2)  # other queues untouched


def test_purge_needs_confirmation(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    seed(memory, markers)
    result = cli("purge", "emails", *memory_args)  # stdin is not a terminal
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: purging 'emails' deletes its messages: confirm with --yes"
    )
    assert stats(memory, "emails") == (3, 1, 0, 0)


def test_purge_confirmed_interactively(
    cli: Invoke,
    memory: MemoryDriver,
    memory_args: list[str],
    markers: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(memory, markers)
    monkeypatch.setattr(output, "interactive", lambda: True)
    refused = cli("purge", "emails", *memory_args, input="n\n")
    assert refused.exit_code == 1 and "aborted" in refused.stderr
    assert stats(memory, "emails")[0] == 3
    accepted = cli("purge", "emails", *memory_args, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert stats(memory, "emails") == (0, 0, 0, 0)


def test_env_file_and_environment_select_the_driver(
    cli: Invoke, memory: MemoryDriver, namespace: str, markers: Path, tmp_path: Path
) -> None:
    seed(memory, markers)
    env_file = tmp_path / "settings.env"
    env_file.write_text(f"ASYNCTASQ_DRIVER=memory\nASYNCTASQ_MEMORY_NAMESPACE={namespace}\n")
    result = cli("queues", "--env-file", str(env_file), "--json")
    assert result.exit_code == 0, result.output
    assert [q["queue"] for q in json.loads(result.stdout)] == ["emails", "reports"]
    # the environment beats the file; the command line beats both
    other = cli(
        "queues",
        "--env-file",
        str(env_file),
        "--json",
        env={"ASYNCTASQ_MEMORY_NAMESPACE": "elsewhere"},
    )
    assert json.loads(other.stdout) == []
    back = cli(
        "queues",
        "--env-file",
        str(env_file),
        "--json",
        "-o",
        f"namespace={namespace}",
        env={"ASYNCTASQ_MEMORY_NAMESPACE": "elsewhere"},
    )
    assert len(json.loads(back.stdout)) == 2
    missing = cli("queues", "--env-file", str(tmp_path / "nope.env"))
    assert missing.exit_code == 2
    assert "no such file" in missing.stderr
