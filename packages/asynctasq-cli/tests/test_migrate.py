"""``asynctasq migrate``: the configured driver's schema."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from cli_testing import Invoke

POSTGRES_DSN = os.environ.get(
    "ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


def test_driver_without_a_schema(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("migrate", *memory_args)
    assert result.exit_code == 0, result.output
    assert "keeps no schema: nothing to migrate" in result.stdout


@pytest.mark.parametrize(
    ("driver", "dsn"),
    [
        ("postgres", "postgresql://nobody:pw@127.0.0.1:1/db"),
        ("mysql", "mysql://nobody:pw@127.0.0.1:1/db"),
    ],
)
def test_dry_run_prints_the_sql_without_connecting(cli: Invoke, driver: str, dsn: str) -> None:
    pytest.importorskip(f"asynctasq_{driver}")
    result = cli("migrate", "--driver", driver, "--dry-run", "-o", f"dsn={dsn}")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE" in result.stdout


def test_plugin_migrate_command_is_used_when_the_driver_has_none(
    cli: Invoke, fake_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asynctasq.plugins as core_plugins

    info = fake_plugins / "asynctasq_fake_cli-1.2.3.dist-info" / "entry_points.txt"
    info.write_text(
        info.read_text().replace(
            "[asynctasq.cli]\n", "[asynctasq.cli]\nfakedb = asynctasq_fake_cli:app\n"
        )
        + "fakedb = asynctasq_fake_cli:FakeDriver\n"
    )
    core_plugins.refresh()
    result = cli("migrate", "--driver", "fakedb", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout == "fake migrate dry_run=True\n"


def test_unreachable_database_is_one_line(cli: Invoke) -> None:
    pytest.importorskip("asynctasq_postgres")
    result = cli(
        "migrate",
        "--driver",
        "postgres",
        "-o",
        "dsn=postgresql://u:hunter2@127.0.0.1:1/db",
        "-o",
        "connect_timeout=2",
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: cannot connect to postgres"), result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.output
    assert "hunter2" not in result.output


def _postgres_reachable() -> bool:
    try:
        import asyncpg
    except ImportError:
        return False

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=2)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


def test_migrate_postgres_for_real(cli: Invoke) -> None:
    if not _postgres_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unreachable at {POSTGRES_DSN} (CI is set)")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_DSN}")
    import asyncpg

    schema = f"cli_{uuid.uuid4().hex[:10]}"
    args = ["--driver", "postgres", "-o", f"dsn={POSTGRES_DSN}", "-o", f"schema={schema}"]
    try:
        first = cli("migrate", *args)
        assert first.exit_code == 0, first.output
        assert first.stdout.startswith("Applied migration(s) 1")
        again = cli("migrate", *args)
        assert again.exit_code == 0, again.output
        assert "is up to date" in again.stdout
        assert cli("queues", *args, "--json").stdout.strip() == "[]"
    finally:

        async def drop() -> None:
            conn = await asyncpg.connect(POSTGRES_DSN)
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.close()

        asyncio.run(drop())
