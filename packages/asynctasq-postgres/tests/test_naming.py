"""Identifier validation, quoting, channel names and DSN redaction (no server needed)."""

from __future__ import annotations

import pytest

from asynctasq_postgres import InvalidIdentifierError, PostgresDriver, TableNames, redact_dsn
from asynctasq_postgres.naming import quote_identifier


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1queue",
        "task-queue",
        "task queue",
        'x"; DROP TABLE users; --',
        "tbl.name",
        "ñame",
        "a" * 49,
    ],
)
def test_bad_table_names_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="queue_table"):
        PostgresDriver(queue_table=bad)


@pytest.mark.parametrize("setting", ["schema", "dead_letter_table", "migrations_table"])
def test_every_configured_name_is_validated(setting: str) -> None:
    with pytest.raises(InvalidIdentifierError, match=setting):
        PostgresDriver(**{setting: "no;good"})


def test_table_names_must_differ() -> None:
    with pytest.raises(InvalidIdentifierError, match="must differ"):
        PostgresDriver(queue_table="jobs", dead_letter_table="jobs")


def test_names_are_quoted_and_qualified() -> None:
    names = TableNames("MySchema", "Jobs_1", "dead_1", "Jobs_1_migrations")
    assert names.queue == '"MySchema"."Jobs_1"'
    assert names.dead_letter == '"MySchema"."dead_1"'
    assert quote_identifier('a"b') == '"a""b"'


def test_channel_fits_postgres_limit() -> None:
    short = TableNames("public", "task_queue", "dlq", "m")
    assert short.channel == "asynctasq.public.task_queue"
    long = TableNames("s" * 48, "q" * 48, "d", "m")
    assert len(long.channel) <= 63
    assert long.channel != TableNames("s" * 48, "r" * 48, "d", "m").channel


def test_unknown_setting_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="queue_tabel"):
        PostgresDriver(queue_tabel="x")  # type: ignore[call-arg]


@pytest.mark.parametrize(("min_size", "max_size"), [(-1, 2), (0, 0)])
def test_inconsistent_pool_sizes_are_rejected(min_size: int, max_size: int) -> None:
    with pytest.raises(ValueError, match="pool_size"):
        PostgresDriver(min_pool_size=min_size, max_pool_size=max_size)


def test_min_pool_size_is_capped_at_max_pool_size() -> None:
    assert PostgresDriver(min_pool_size=5, max_pool_size=3)._min_pool_size == 3
    assert PostgresDriver(max_pool_size=3)._min_pool_size == 1  # the floor: one, grows on use


def test_constructor_does_not_connect() -> None:
    # Nothing listens on port 1: a connection attempt would fail right here.
    driver = PostgresDriver("postgresql://nobody:pw@127.0.0.1:1/none")
    assert "127.0.0.1:1" in repr(driver)


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://app:s3cr%40t%2Fx@db:5432/app?sslmode=require", "s3cr%40t%2Fx"),
        ("postgresql://app:hunter2@db/app", "hunter2"),
        ("postgres://app@db/app?password=hunter2&sslmode=disable", "hunter2"),
        ("host=db user=app password=hunter2 dbname=app", "hunter2"),
        ("host=db password='hun ter2' dbname=app", "hun ter2"),
    ],
)
def test_passwords_never_reach_reprs(dsn: str, secret: str) -> None:
    redacted = redact_dsn(dsn)
    assert redacted is not None
    assert secret not in redacted
    assert "***" in redacted
    text = repr(PostgresDriver(dsn))
    assert secret not in text
    assert "***" in text


def test_redaction_keeps_the_rest() -> None:
    assert (
        redact_dsn("postgresql://app:pw@db:6432/app?sslmode=require")
        == "postgresql://app:***@db:6432/app?sslmode=require"
    )
    assert redact_dsn("postgresql://app@db/app") == "postgresql://app@db/app"
    assert redact_dsn(None) is None


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:pa/ss@db:5432/app", "postgresql://app:***@db:5432/app"),
        (
            "postgresql://app:p?ss#w@db/app?sslmode=require",
            "postgresql://app:***@db/app?sslmode=require",
        ),
        ("postgresql://app:s3cr@t/x@db/app", "postgresql://app:***@db/app"),
    ],
)
def test_unencoded_passwords_are_masked_whole(dsn: str, shown: str) -> None:
    """A "/", "?", "#" or "@" pasted into the password unencoded: none of it is shown."""
    assert redact_dsn(dsn) == shown
    assert shown in repr(PostgresDriver(dsn))


def test_results_names_fit_postgres_limit() -> None:
    assert TableNames("s", "jobs", "d", "m").results_table == "jobs_results"
    longest = TableNames("s", "q" * 48, "d", "m")
    index = longest.index(longest.results_table, "exp").strip('"')
    assert len(longest.results_table) <= 63
    assert len(index) <= 63  # PostgreSQL would truncate a longer one silently


def test_lifecycle_names_fit_postgres_limit() -> None:
    names = TableNames("s", "jobs", "d", "m")
    assert (names.status_table, names.log_table, names.workers_table) == (
        "jobs_status",
        "jobs_log",
        "jobs_workers",
    )
    longest = TableNames("s", "q" * 48, "d", "m")
    for table, suffix in [
        (longest.status_table, "queue"),
        (longest.status_table, "state"),
        (longest.status_table, "exp"),
        (longest.log_table, "exp"),
    ]:
        assert len(longest.index(table, suffix).strip('"')) <= 63
    # The identity sequence PostgreSQL names after the column fits as well.
    assert len(f"{longest.status_table}_seq_seq") <= 63


@pytest.mark.parametrize("suffix", ["results", "status", "log", "workers"])
def test_a_table_cannot_take_the_name_of_a_derived_one(suffix: str) -> None:
    with pytest.raises(InvalidIdentifierError, match=f"jobs_{suffix}"):
        PostgresDriver(queue_table="jobs", dead_letter_table=f"jobs_{suffix}")
    with pytest.raises(InvalidIdentifierError, match=f"jobs_{suffix}"):
        PostgresDriver(queue_table="jobs", migrations_table=f"jobs_{suffix}")
