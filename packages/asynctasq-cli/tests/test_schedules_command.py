"""``asynctasq schedules`` and ``asynctasq worker --schedules``."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_testing import Invoke

from asynctasq.schedules import registry
from asynctasq.schedules.claims import last_key
from asynctasq.testing import MemoryDriver

MODULE = textwrap.dedent(
    """
    from asynctasq import cron, every, schedule, task

    @task(schedule=every(minutes=10))
    async def refresh() -> None: ...

    @task
    async def send_report(kind: str) -> None: ...

    schedule(send_report("daily"), cron("0 7 * * mon-fri", tz="Europe/Berlin"), name="daily")
    """
)


@pytest.fixture
def module() -> Iterator[str]:
    """A task module declaring two schedules, in the working directory."""
    name = f"sched_mod_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(MODULE)
    saved = dict(registry._schedules)
    registry._schedules.clear()
    yield name
    registry._schedules.clear()
    registry._schedules.update(saved)
    sys.modules.pop(name, None)


def test_lists_the_declared_schedules_with_next_runs_and_the_last_tick(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], module: str
) -> None:
    asyncio.run(memory.claim(last_key("daily"), "1800000000", 600))
    asyncio.run(memory.claim(last_key("removed-from-code"), "1800000000", 600))
    result = cli("schedules", "-i", module, "--next", "2", "--json", *memory_args)
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"daily", f"{module}:refresh"}  # state alone lists nothing
    assert rows["daily"]["task"] == f"{module}:send_report"
    assert rows["daily"]["last_tick"] == "2027-01-15T09:00:00+01:00"
    assert len(rows["daily"]["next_runs"]) == 2
    assert all(r.endswith(("+01:00", "+02:00")) for r in rows["daily"]["next_runs"])
    assert rows[f"{module}:refresh"]["last_tick"] is None
    table = cli("schedules", "-i", module, *memory_args)
    assert table.exit_code == 0, table.output
    assert "every 10m" in table.stdout and "2027-01-15 09:00:00 CET" in table.stdout


def test_a_last_tick_that_is_not_a_tick_is_shown_as_unknown(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], module: str
) -> None:
    asyncio.run(memory.claim(last_key("daily"), "\x1b]0;owned\x07", 600))
    result = cli("schedules", "-i", module, *memory_args)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "owned" not in result.stdout


@pytest.mark.parametrize("json_output", [False, True])
def test_a_last_tick_past_year_9999_is_shown_as_unknown(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], module: str, json_output: bool
) -> None:
    asyncio.run(memory.claim(last_key("daily"), "999999999999", 600))
    result = cli("schedules", "-i", module, *memory_args, *(["--json"] if json_output else []))
    assert result.exit_code == 0, result.output
    assert "33658" not in result.stdout


def test_without_task_modules_there_is_nothing_to_list(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("schedules", *memory_args)
    assert result.exit_code == 0, result.output
    assert "No schedules declared" in result.stdout


def test_a_module_that_fails_to_import_is_one_line(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("schedules", "-i", "no_such_module_here", *memory_args)
    assert result.exit_code == 1
    assert "--import 'no_such_module_here' failed" in result.stderr


def test_worker_schedules_on_a_driver_without_claims_is_a_usage_error(cli: Invoke) -> None:
    result = cli("worker", "--schedules", "--burst", "--driver", "rabbitmq", "--no-live")
    assert result.exit_code == 2, result.output
    assert "keeps claims" in result.stderr and "redis, postgres" in result.stderr
