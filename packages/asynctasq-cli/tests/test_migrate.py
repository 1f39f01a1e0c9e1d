"""``asynctasq migrate``: the one command that creates or upgrades a driver's schema.

It reads the driver's settings like every other command (``-o``, ``--set``, then
``ASYNCTASQ_*`` variables, then ``.env``), for every driver that is a `SchemaManager`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_testing import Invoke

import asynctasq.plugins as core_plugins

POSTGRES_DSN = os.environ.get(
    "ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_DSN = os.environ.get("ASYNCTASQ_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")

SCHEMA_DRIVER_MODULE = '''
class SchemaDriver:
    """A third-party driver with a schema: it only has the protocol's methods."""

    def __init__(self, label: str = "x", auto_migrate: bool = True) -> None:
        self.label = label
        self.auto_migrate = auto_migrate
        self.applied = False

    async def init_schema(self) -> list[int]:
        assert not self.auto_migrate, "asynctasq migrate must turn auto_migrate off"
        self.applied, first = True, not self.applied
        return [1, 2] if first else []

    def migration_sql(self) -> str:
        return f"CREATE TABLE {self.label} (id integer);\\n"

    async def close(self) -> None:
        pass
'''


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _unreachable(what: str, exc: BaseException) -> None:
    reason = f"{what} unreachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set)")
    pytest.skip(reason)


# -- servers ---------------------------------------------------------------------------------


async def _postgres_tables(schema: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        return {row["table_name"] for row in rows}
    finally:
        await conn.close()


async def _drop_postgres_schemas(*schemas: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A schema name of this test's own on a reachable server; it (and ``<name>_unused``)
    is dropped afterwards."""
    pytest.importorskip("asynctasq_postgres")
    name = _unique("cli_migrate")
    try:
        asyncio.run(_postgres_tables(name))
    except Exception as exc:
        _unreachable(f"PostgreSQL at {POSTGRES_DSN}", exc)
    yield name
    asyncio.run(_drop_postgres_schemas(name, f"{name}_unused"))


async def _mysql(sql: str, *args: Any) -> list[Any]:
    import aiomysql

    from asynctasq_mysql import parse_dsn

    conn = await aiomysql.connect(autocommit=True, **parse_dsn(MYSQL_DSN).connect_kwargs())
    try:
        async with conn.cursor() as cursor:
            await cursor.execute("SET SESSION sql_notes = 0")
            await cursor.execute(sql, args or None)
            return list(await cursor.fetchall())
    finally:
        conn.close()


async def _mysql_tables(prefix: str) -> set[str]:
    rows = await _mysql(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND LEFT(table_name, %s) = %s",
        len(prefix),
        prefix,
    )
    return {row[0] for row in rows}


async def _drop_mysql_tables(prefix: str) -> None:
    for table in await _mysql_tables(prefix):
        await _mysql(f"DROP TABLE IF EXISTS `{table}`")


@pytest.fixture
def mysql_prefix() -> Iterator[str]:
    """A table-name prefix of this test's own on a reachable server; every table named
    with it is dropped afterwards."""
    pytest.importorskip("asynctasq_mysql")
    prefix = _unique("cli")
    try:
        asyncio.run(_mysql_tables(prefix))
    except Exception as exc:
        _unreachable(f"MySQL at {MYSQL_DSN}", exc)
    yield prefix
    asyncio.run(_drop_mysql_tables(prefix))


# -- without a server ------------------------------------------------------------------------


def test_driver_without_a_schema(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("migrate", *memory_args)
    assert result.exit_code == 0, result.output
    assert "keeps no schema: nothing to migrate" in result.stdout


@pytest.mark.parametrize(
    ("driver", "options", "expected"),
    [
        (
            "postgres",
            ["dsn=postgresql://nobody:pw@127.0.0.1:1/db", "schema=jobs", "queue_table=work"],
            ['CREATE TABLE IF NOT EXISTS "jobs"."work"'],
        ),
        (
            "mysql",
            ["dsn=mysql://nobody:pw@unreachable.invalid/db", "queue_table=q1"],
            [
                "CREATE TABLE IF NOT EXISTS `q1` (",
                "CREATE TABLE IF NOT EXISTS `dead_letter_queue` (",
            ],
        ),
        ("sqlite", ["path=never-created.db"], ["CREATE TABLE IF NOT EXISTS asynctasq_messages"]),
    ],
)
def test_dry_run_prints_the_sql_without_connecting(
    cli: Invoke, driver: str, options: list[str], expected: list[str]
) -> None:
    pytest.importorskip(f"asynctasq_{driver}")
    args = [arg for option in options for arg in ("-o", option)]
    result = cli("migrate", "--driver", driver, "--dry-run", *args)
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.stdout
    assert not Path("never-created.db").exists()


@pytest.mark.parametrize(
    ("driver", "dsn"),
    [
        ("postgres", "postgresql://u:hunter2@127.0.0.1:1/db"),
        ("mysql", "mysql://u:hunter2@127.0.0.1:1/db"),
    ],
)
def test_a_bad_table_name_exits_2_naming_it_without_the_password(
    cli: Invoke, driver: str, dsn: str
) -> None:
    pytest.importorskip(f"asynctasq_{driver}")
    result = cli("migrate", "--driver", driver, "-o", f"dsn={dsn}", "-o", "queue_table=x;drop")
    assert result.exit_code == 2, result.output
    assert "queue_table" in result.stderr and "'x;drop'" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("driver", "dsn", "shown"),
    [
        (
            "postgres",
            "postgresql://u:hunter2@127.0.0.1:1/db",
            "postgresql://u:***@127.0.0.1:1/db",
        ),
        (
            "mysql",
            "mysql://u:hunter2@127.0.0.1:1/db?connect_timeout=2",
            "mysql://u:***@127.0.0.1:1/db",
        ),
    ],
)
def test_unreachable_database_is_one_line(cli: Invoke, driver: str, dsn: str, shown: str) -> None:
    pytest.importorskip(f"asynctasq_{driver}")
    extra = ["-o", "connect_timeout=2"] if driver == "postgres" else []
    result = cli("migrate", "--driver", driver, "-o", f"dsn={dsn}", *extra)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: cannot migrate {driver}"), result.output
    assert shown in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("driver", "quoted"), [("postgres", '"public"."from_dotenv"'), ("mysql", "`from_dotenv` (")]
)
def test_dry_run_and_errors_follow_the_configuration(cli: Invoke, driver: str, quoted: str) -> None:
    pytest.importorskip(f"asynctasq_{driver}")
    prefix = f"ASYNCTASQ_{driver.upper()}"
    Path(".env").write_text(f"ASYNCTASQ_DRIVER={driver}\n{prefix}_QUEUE_TABLE=from_dotenv\n")
    result = cli("migrate", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"CREATE TABLE IF NOT EXISTS {quoted}" in result.stdout
    Path(".env").write_text(f"ASYNCTASQ_DRIVER={driver}\n{prefix}_QUEUE_TABLEE=typo\n")
    result = cli("migrate", "--dry-run")
    assert result.exit_code == 2, result.output
    assert f"{driver}.queue_tablee" in result.output


def test_a_third_party_schema_manager_is_migrated(cli: Invoke, fake_plugins: Path) -> None:
    # The capability is a protocol: a driver that inherits nothing from asynctasq has it.
    (fake_plugins / "asynctasq_fake_schema.py").write_text(SCHEMA_DRIVER_MODULE)
    info = fake_plugins / "asynctasq_fake_cli-1.2.3.dist-info" / "entry_points.txt"
    info.write_text(info.read_text() + "fakedb = asynctasq_fake_schema:SchemaDriver\n")
    core_plugins.refresh()
    try:
        result = cli("migrate", "--driver", "fakedb", "--dry-run", "-o", "label=jobs")
        assert result.exit_code == 0, result.output
        assert result.stdout == "CREATE TABLE jobs (id integer);\n"
        result = cli("migrate", "--driver", "fakedb")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Applied migration(s) 1, 2 to fakedb"), result.output
    finally:
        sys.modules.pop("asynctasq_fake_schema", None)


# -- with a server ---------------------------------------------------------------------------


def test_migrate_postgres_then_up_to_date(cli: Invoke, postgres_schema: str) -> None:
    args = ["--driver", "postgres", "-o", f"dsn={POSTGRES_DSN}", "-o", f"schema={postgres_schema}"]
    first = cli("migrate", *args)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Applied migration(s) 1, 2, 3, 4"), first.output
    again = cli("migrate", *args)
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.stdout
    assert cli("queues", *args, "--json").stdout.strip() == "[]"


def test_migrate_postgres_reads_the_dsn_and_names_from_dotenv(
    cli: Invoke, postgres_schema: str
) -> None:
    queue_table = _unique("jobs")
    Path(".env").write_text(
        "ASYNCTASQ_DRIVER=postgres\n"
        f"ASYNCTASQ_POSTGRES_DSN={POSTGRES_DSN}\n"
        f"ASYNCTASQ_POSTGRES_SCHEMA={postgres_schema}\n"
        f"ASYNCTASQ_POSTGRES_QUEUE_TABLE={queue_table}\n"
    )
    first = cli("migrate")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Applied migration(s) 1"), first.output
    assert f"queue_table={queue_table}" in first.stdout
    tables = asyncio.run(_postgres_tables(postgres_schema))
    assert {queue_table, f"{queue_table}_migrations"} <= tables
    again = cli("migrate")
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.stdout


def test_migrate_postgres_takes_set_and_options_over_dotenv(
    cli: Invoke, postgres_schema: str
) -> None:
    Path(".env").write_text(
        "ASYNCTASQ_DRIVER=postgres\n"
        "ASYNCTASQ_POSTGRES_DSN=postgresql://nobody@127.0.0.1:1/none\n"
        f"ASYNCTASQ_POSTGRES_SCHEMA={postgres_schema}_unused\n"
    )
    queue_table = _unique("jobs")
    result = cli(
        "migrate",
        "--set",
        f"postgres.dsn={POSTGRES_DSN}",
        "--set",
        f"postgres.schema={postgres_schema}_unused",
        "-o",
        f"schema={postgres_schema}",
        "-o",
        f"queue_table={queue_table}",
    )
    assert result.exit_code == 0, result.output
    assert queue_table in asyncio.run(_postgres_tables(postgres_schema))
    assert not asyncio.run(_postgres_tables(f"{postgres_schema}_unused"))


def test_migrate_mysql_reads_the_dsn_and_names_from_dotenv(cli: Invoke, mysql_prefix: str) -> None:
    queue, dead = f"{mysql_prefix}_q", f"{mysql_prefix}_dlq"
    Path(".env").write_text(
        "ASYNCTASQ_DRIVER=mysql\n"
        f"ASYNCTASQ_MYSQL_DSN={MYSQL_DSN}\n"
        f"ASYNCTASQ_MYSQL_QUEUE_TABLE={queue}\n"
        f"ASYNCTASQ_MYSQL_DEAD_LETTER_TABLE={dead}\n"
    )
    first = cli("migrate")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Applied migration(s) 1, 2, 3, 4"), first.output
    assert f"queue_table={queue}" in first.stdout
    assert {queue, dead, f"{queue}_migrations"} <= asyncio.run(_mysql_tables(mysql_prefix))
    again = cli("migrate")
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.stdout


def test_migrate_mysql_takes_set_and_options_over_dotenv(cli: Invoke, mysql_prefix: str) -> None:
    queue, dead = f"{mysql_prefix}_q", f"{mysql_prefix}_dlq"
    Path(".env").write_text(
        "ASYNCTASQ_DRIVER=mysql\n"
        "ASYNCTASQ_MYSQL_DSN=mysql://nobody@127.0.0.1:1/none\n"
        f"ASYNCTASQ_MYSQL_QUEUE_TABLE={mysql_prefix}_not_this_one\n"
    )
    result = cli(
        "migrate",
        "--set",
        f"mysql.dsn={MYSQL_DSN}",
        "--set",
        f"mysql.queue_table={mysql_prefix}_not_this_either",
        "-o",
        f"queue_table={queue}",
        "-o",
        f"dead_letter_table={dead}",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Applied migration(s) 1"), result.output
    tables = asyncio.run(_mysql_tables(mysql_prefix))
    assert {queue, dead} <= tables
    assert not {t for t in tables if "not_this" in t}


def test_migrate_sqlite_creates_the_file_then_up_to_date(cli: Invoke) -> None:
    pytest.importorskip("asynctasq_sqlite")
    from asynctasq_sqlite import SCHEMA_VERSION

    args = ["--driver", "sqlite", "-o", "path=queue.db"]
    first = cli("migrate", *args)
    assert first.exit_code == 0, first.output
    versions = ", ".join(str(v) for v in range(1, SCHEMA_VERSION + 1))
    assert first.stdout.startswith(f"Applied migration(s) {versions} to sqlite"), first.output
    again = cli("migrate", *args)
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.stdout
