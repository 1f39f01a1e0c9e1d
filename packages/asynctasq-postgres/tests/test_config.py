"""Core's configuration reaches the constructor: env vars, init() sections, flat keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from asynctasq import init, set_global_config
from asynctasq.drivers.connections import build_driver
from asynctasq.errors import ConfigError
from asynctasq_postgres import PostgresDriver


@pytest.fixture
def restore_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    init()


def test_environment_variables_map_to_settings(restore_config: pytest.MonkeyPatch) -> None:
    env = {
        "ASYNCTASQ_DRIVER": "postgres",
        "ASYNCTASQ_POSTGRES_DSN": "postgresql://app:hunter2@db:5432/app?sslmode=require",
        "ASYNCTASQ_POSTGRES_QUEUE_TABLE": "jobs",
        "ASYNCTASQ_POSTGRES_DEAD_LETTER_TABLE": "jobs_dead",
        "ASYNCTASQ_POSTGRES_MIN_POOL_SIZE": "2",
        "ASYNCTASQ_POSTGRES_MAX_POOL_SIZE": "5",
        "ASYNCTASQ_POSTGRES_POLL_INTERVAL": "1.5",
        "ASYNCTASQ_POSTGRES_ASYNC_COMMIT_LEASES": "false",
    }
    for key, value in env.items():
        restore_config.setenv(key, value)
    driver = build_driver(config=init())
    assert isinstance(driver, PostgresDriver)
    assert driver.table_names.queue_table == "jobs"
    assert driver.table_names.dead_letter_table == "jobs_dead"
    assert (driver._min_pool_size, driver._max_pool_size) == (2, 5)
    assert driver._poll_interval == 1.5
    assert "lazy_commit" not in driver._sql.ack
    assert "hunter2" not in repr(driver)


def test_init_section_and_flat_keys(restore_config: pytest.MonkeyPatch) -> None:
    init({"driver": "postgres", "postgres": {"schema": "tasks", "max_pool_size": 3}})
    driver = build_driver()
    assert isinstance(driver, PostgresDriver)
    assert (driver.table_names.schema, driver._max_pool_size) == ("tasks", 3)
    set_global_config(postgres_queue_table="other")
    driver = build_driver()
    assert isinstance(driver, PostgresDriver)
    assert driver.table_names.queue_table == "other"


def test_bad_settings_are_reported_by_name(restore_config: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="queue_tabel"):
        init({"driver": "postgres", "postgres": {"queue_tabel": "x"}})
    with pytest.raises(ConfigError, match="queue_table"):
        build_driver(config=init({"driver": "postgres", "postgres": {"queue_table": "a-b"}}))


async def test_a_failed_connection_names_the_server_and_the_setting() -> None:
    driver = PostgresDriver(dsn="postgresql://app:hunter2@127.0.0.1:1/app", connect_timeout=2)
    with pytest.raises(OSError) as caught:  # noqa: PT011 - the client's own error, kept
        await driver.connect()
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "PostgreSQL at postgresql://app:***@127.0.0.1:1/app" in notes
    assert "ASYNCTASQ_POSTGRES_DSN" in notes and "hunter2" not in notes


async def test_with_no_dsn_the_log_names_the_database_libpq_chose(
    make_driver: Any, dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a DSN, libpq's defaults took a worker (and its tables) to a database nobody
    named, in silence; the driver now says where it connected."""
    url = urlsplit(dsn)
    database, user = url.path.lstrip("/") or "test", url.username or "postgres"
    monkeypatch.setenv("PGHOST", url.hostname or "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(url.port or 5432))
    monkeypatch.setenv("PGUSER", user)
    monkeypatch.setenv("PGDATABASE", database)
    driver = make_driver(dsn=None)
    with caplog.at_level("INFO", logger="asynctasq.postgres"):
        await driver.connect()
    said = [r for r in caplog.records if "no postgres dsn set" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "INFO"
    assert f"database {database!r} as {user!r}" in said[0].getMessage()


def test_asyncpg_failing_to_reopen_a_connection_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """During an outage asyncpg logged a whole traceback every 1 to 4 s per process."""
    import logging

    import asynctasq_postgres.driver  # noqa: F401  # installs the filter

    try:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    except ConnectionRefusedError:
        with caplog.at_level(logging.WARNING, logger="asyncpg.pool"):
            logging.getLogger("asyncpg.pool").warning(
                "Failed to restore the pool connection floor; retrying", exc_info=True
            )
            logging.getLogger("asyncpg.pool").warning("something else", exc_info=True)
    noisy, other = caplog.records
    assert noisy.exc_info is None and "ConnectionRefusedError" in noisy.getMessage()
    assert "Connect call failed" in noisy.getMessage() and "Traceback" not in caplog.text[:200]
    assert other.exc_info is not None  # any other record keeps its traceback
