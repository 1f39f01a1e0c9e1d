"""Priorities on MySQL beyond the conformance suite: the upgrade from a version 4 schema,
and the migration running again after an interruption."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_mysql import MySQLDriver, SchemaNotInitializedError


def msg(priority: int = 0) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), "q", b"x", priority=priority)


async def _back_to_version_4(admin: Any, table_names: dict[str, str]) -> None:
    q, dl = table_names["queue"], table_names["dead_letter"]
    async with admin.cursor() as cursor:
        await cursor.execute(f"ALTER TABLE `{q}` DROP KEY `ix_priority`, DROP COLUMN `priority`")
        await cursor.execute(f"ALTER TABLE `{dl}` DROP COLUMN `priority`")
        await cursor.execute(f"DELETE FROM `{table_names['migrations']}` WHERE `version` = 5")


async def test_a_version_4_schema_gets_priorities(
    make_driver: Callable[..., MySQLDriver], admin: Any, table_names: dict[str, str]
) -> None:
    setup = make_driver(auto_migrate=False)
    assert await setup.init_schema() == [1, 2, 3, 4, 5]
    await _back_to_version_4(admin, table_names)
    async with admin.cursor() as cursor:  # a message queued before the upgrade
        await cursor.execute(
            f"INSERT INTO `{table_names['queue']}` (`task_id`, `queue`, `payload`, "
            "`available_at`, `visibility_timeout`, `enqueued_at`) "
            "VALUES ('old', 'q', 'x', UTC_TIMESTAMP(6), 30, UTC_TIMESTAMP(6))"
        )
    driver = make_driver(auto_migrate=False)
    with pytest.raises(SchemaNotInitializedError, match="migrate"):
        await driver.enqueue(msg(4))  # a driver newer than its tables says what to do
    assert await driver.init_schema() == [5]
    urgent = msg(4)
    await driver.enqueue_many([msg(), urgent])
    got = await driver.dequeue(["q"], limit=2, wait=0)
    assert [d.task_id for d in got] == [urgent.task_id, "old"]


async def test_the_priority_migration_runs_again_after_an_interruption(
    make_driver: Callable[..., MySQLDriver], admin: Any, table_names: dict[str, str]
) -> None:
    driver = make_driver(auto_migrate=False)
    assert await driver.init_schema() == [1, 2, 3, 4, 5]
    async with admin.cursor() as cursor:  # the columns exist, the version was not recorded
        await cursor.execute(f"DELETE FROM `{table_names['migrations']}` WHERE `version` = 5")
    assert await driver.init_schema() == [5]
    await driver.enqueue_many([low := msg(), high := msg(9)])
    got = await driver.dequeue(["q"], limit=2, wait=0)
    assert [d.task_id for d in got] == [high.task_id, low.task_id]


async def test_a_priority_outside_the_range_is_refused(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    driver = make_driver()
    bad = OutgoingMessage(str(uuid.uuid4()), "q", b"x", priority=12)
    with pytest.raises(ValueError, match="priority must be"):
        await driver.enqueue_many([msg(1), bad])
    assert await driver.dequeue(["q"], limit=5, wait=0) == []
