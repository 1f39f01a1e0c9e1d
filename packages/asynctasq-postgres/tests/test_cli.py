"""Entry points and the ``migrate`` sub-command (run as a real process)."""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import entry_points

import asyncpg
import typer

from asynctasq_postgres import PostgresDriver
from asynctasq_postgres.cli import app


def test_entry_points_are_registered() -> None:
    [driver] = entry_points(group="asynctasq.drivers", name="postgres")
    assert driver.load() is PostgresDriver
    [cli] = entry_points(group="asynctasq.cli", name="postgres")
    assert cli.load() is app
    assert isinstance(app, typer.Typer)


async def run_cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asynctasq_postgres.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_migrate_dry_run_prints_sql_without_connecting() -> None:
    code, out = await run_cli(
        "migrate",
        "--dsn",
        "postgresql://x:pw@127.0.0.1:1/none",
        "--dry-run",
        "--schema",
        "jobs",
        "--queue-table",
        "work",
    )
    assert code == 0, out
    assert 'CREATE TABLE IF NOT EXISTS "jobs"."work"' in out
    assert out.strip().endswith("COMMIT;")


async def test_migrate_creates_then_reports_up_to_date(
    dsn: str, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    schema = "atq_cli_test"
    await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    try:
        code, out = await run_cli("migrate", "--dsn", dsn, "--schema", schema)
        assert code == 0, out
        assert "Applied migration(s) 1" in out
        code, out = await run_cli("migrate", "--dsn", dsn, "--schema", schema)
        assert code == 0, out
        assert "up to date" in out
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def test_migrate_rejects_bad_names() -> None:
    code, out = await run_cli("migrate", "--dry-run", "--queue-table", "x;drop")
    assert code == 2
    assert out.startswith("error: queue_table='x;drop' is not a valid identifier")


async def test_migrate_failure_is_one_line_without_the_password() -> None:
    code, out = await run_cli("migrate", "--dsn", "postgresql://app:hunter2@127.0.0.1:1/none")
    assert code == 1
    assert out.startswith("error: cannot migrate postgresql://app:***@127.0.0.1:1/none")
    assert "hunter2" not in out
