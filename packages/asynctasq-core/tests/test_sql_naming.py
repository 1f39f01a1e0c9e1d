"""`asynctasq.drivers.sql.naming`: the identifier rules every SQL driver shares."""

from __future__ import annotations

import pytest

from asynctasq.drivers.sql import Dialect, InvalidIdentifierError
from asynctasq.errors import ConfigError

DOUBLE = Dialect("Double", '"', max_length=10, max_identifier_length=40)
BACK = Dialect(
    "Back",
    "`",
    max_length=10,
    max_identifier_length=40,
    case_insensitive=True,
    backslash_escapes=True,
)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1queue",
        "task-queue",
        "task queue",
        'x"; DROP TABLE t; --',
        "a.b",
        "ñame",
        "q\n",
        "a" * 11,
        None,
        3,
    ],
)
def test_anything_but_a_plain_short_identifier_is_refused(bad: object) -> None:
    with pytest.raises(InvalidIdentifierError, match="invalid queue_table") as caught:
        DOUBLE.identifier(bad, "queue_table")  # type: ignore[arg-type]
    assert "1 to 10 ASCII letters" in str(caught.value)
    assert isinstance(caught.value, ConfigError)  # the CLI exits 2 with it


@pytest.mark.parametrize("good", ["q", "_q", "Task_Q_2", "a" * 10])
def test_plain_identifiers_pass_unchanged(good: str) -> None:
    assert DOUBLE.identifier(good, "queue_table") == good


def test_quoting_and_literals_follow_the_dialect() -> None:
    assert DOUBLE.quote("Jobs") == '"Jobs"'
    assert DOUBLE.quote('a"b') == '"a""b"'
    assert BACK.quote("a`b") == "`a``b`"
    assert DOUBLE.literal("it's \\n") == "'it''s \\n'"
    assert BACK.literal("it's \\n") == "'it''s \\\\n'"


def test_a_derived_name_is_hashed_only_past_the_server_limit() -> None:
    assert DOUBLE.derived("jobs", "results") == "jobs_results"
    assert DOUBLE.derived("q" * 32, "results") == "q" * 32 + "_results"  # 40: fits
    long = DOUBLE.derived("q" * 35, "results")  # 43 > 40
    assert long.startswith("asynctasq_results_") and len(long) == len("asynctasq_results_") + 16
    assert long != DOUBLE.derived("r" * 35, "results")
    assert long == DOUBLE.derived("q" * 35, "results")  # stable across processes


def test_names_must_differ_ignoring_case_where_the_server_may() -> None:
    DOUBLE.require_distinct({"queue_table": "jobs", "dead_letter_table": "JOBS"})
    with pytest.raises(InvalidIdentifierError, match="must differ: dead_letter_table='jobs'"):
        DOUBLE.require_distinct({"queue_table": "jobs", "dead_letter_table": "jobs"})
    with pytest.raises(InvalidIdentifierError, match=r"must differ \(ignoring case\)"):
        BACK.require_distinct({"queue_table": "jobs", "dead_letter_table": "JOBS"})
