"""Hostile messages thrown at a real worker process on MySQL/MariaDB: it stays up."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from asynctasq.testing.hostile import HostileProject, check_worker_survives, hostile_messages
from asynctasq_mysql import MySQLDriver

pytestmark = pytest.mark.slow


async def test_hostile_messages_are_dead_lettered_and_the_batch_runs(
    driver: MySQLDriver, mysql_dsn: str, table_names: dict[str, str], tmp_path: Path
) -> None:
    settings = {
        "dsn": mysql_dsn,
        "queue_table": table_names["queue"],
        "dead_letter_table": table_names["dead_letter"],
    }
    project = HostileProject(tmp_path / "app", {"driver": "mysql", "mysql": settings})
    queue = f"hostile-{uuid.uuid4().hex[:8]}"
    await check_worker_survives(driver, project, queue, hostile_messages())
