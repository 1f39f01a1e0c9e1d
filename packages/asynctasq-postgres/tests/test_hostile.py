"""Hostile messages thrown at a real worker process on PostgreSQL: it stays up, the rest of
the batch runs and every dead letter is committed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from asynctasq.testing.hostile import HostileProject, check_worker_survives, hostile_messages
from asynctasq_postgres import PostgresDriver

pytestmark = pytest.mark.slow


async def test_hostile_messages_are_dead_lettered_and_the_batch_runs(
    driver: PostgresDriver, dsn: str, tmp_path: Path
) -> None:
    config = {"driver": "postgres", "postgres": {"dsn": dsn, "schema": driver.table_names.schema}}
    project = HostileProject(tmp_path / "app", config)
    queue = f"hostile-{uuid.uuid4().hex[:8]}"
    await check_worker_survives(driver, project, queue, hostile_messages())
