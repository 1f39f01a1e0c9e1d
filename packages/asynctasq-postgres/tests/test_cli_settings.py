"""``asynctasq postgres migrate`` reads its settings like every other command: command line
(``--set``, its own options), then ``ASYNCTASQ_POSTGRES_*`` variables, then ``.env``."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

ASYNCTASQ = "from asynctasq_cli.app import main; main()"
"""The ``asynctasq`` console script, run with this interpreter."""


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def run_asynctasq(*args: str, cwd: Path) -> tuple[int, str]:
    # No ASYNCTASQ_* or PG* variables from the calling environment: the .env must decide.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCTASQ_", "PG"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ASYNCTASQ,
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def tables_in(admin: asyncpg.Connection[asyncpg.Record], schema: str) -> set[str]:
    rows = await admin.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    return {r["table_name"] for r in rows}


@pytest.fixture
async def schema(admin: asyncpg.Connection[asyncpg.Record]) -> AsyncIterator[str]:
    """A schema name of this test's own, dropped (with its tables) afterwards."""
    name = unique_name("atq_cli_env")
    try:
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


async def test_migrate_reads_the_dsn_and_names_from_dotenv(
    dsn: str, admin: asyncpg.Connection[asyncpg.Record], schema: str, tmp_path: Path
) -> None:
    queue_table = unique_name("jobs")
    (tmp_path / ".env").write_text(
        f"ASYNCTASQ_POSTGRES_DSN={dsn}\n"
        f"ASYNCTASQ_POSTGRES_SCHEMA={schema}\n"
        f"ASYNCTASQ_POSTGRES_QUEUE_TABLE={queue_table}\n"
    )
    code, out = await run_asynctasq("postgres", "migrate", cwd=tmp_path)
    assert code == 0, out
    assert "Applied migration(s) 1" in out and f"{schema}.{queue_table}" in out
    assert {queue_table, f"{queue_table}_migrations"} <= await tables_in(admin, schema)
    code, out = await run_asynctasq("postgres", "migrate", cwd=tmp_path)
    assert code == 0, out
    assert "up to date" in out


async def test_migrate_takes_set_and_options_over_dotenv(
    dsn: str, admin: asyncpg.Connection[asyncpg.Record], schema: str, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "ASYNCTASQ_POSTGRES_DSN=postgresql://nobody@127.0.0.1:1/none\n"
        f"ASYNCTASQ_POSTGRES_SCHEMA={schema}_unused\n"
    )
    queue_table = unique_name("jobs")
    code, out = await run_asynctasq(
        "postgres",
        "migrate",
        "--set",
        f"postgres.dsn={dsn}",
        "--set",
        f"postgres.schema={schema}_unused",
        "--schema",
        schema,
        "--queue-table",
        queue_table,
        cwd=tmp_path,
    )
    assert code == 0, out
    assert queue_table in await tables_in(admin, schema)
    assert not await tables_in(admin, f"{schema}_unused")


async def test_migrate_dry_run_and_errors_follow_the_configuration(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ASYNCTASQ_POSTGRES_QUEUE_TABLE=from_dotenv\n")
    code, out = await run_asynctasq("postgres", "migrate", "--dry-run", cwd=tmp_path)
    assert code == 0, out
    assert '"public"."from_dotenv"' in out
    (tmp_path / ".env").write_text("ASYNCTASQ_POSTGRES_QUEUE_TABLEE=typo\n")
    code, out = await run_asynctasq("postgres", "migrate", "--dry-run", cwd=tmp_path)
    assert code == 2
    assert "postgres.queue_tablee" in out
