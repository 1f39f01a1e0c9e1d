"""A log line carries a bounded, masked amount of text, whatever a task raised: a worker's
event loop must not stall on one multi-megabyte error message."""

from __future__ import annotations

import io
import json
import logging
import sys
import time

import pytest
from rich.console import Console

import asynctasq_cli.logging as cli_logging
from asynctasq_cli.logging import LogFormat, bounded, configure_logging

LIMIT = 64 * 1024  # the documented bound of a record's message and of its traceback
TERMINAL_LIMIT = 8 * 1024
SLACK = 4 * 1024  # how far the cut may move to a space
SIZE = 5 * 1024 * 1024
SECRET_URL = "redis://:hunter2@cache:6379/0"


def test_the_documented_bounds() -> None:
    assert cli_logging.MAX_MESSAGE_CHARS == LIMIT
    assert cli_logging.TERMINAL_MESSAGE_CHARS == TERMINAL_LIMIT


def test_bounded_cuts_says_how_much_and_masks() -> None:
    assert bounded(f"connect {SECRET_URL}") == "connect redis://:***@cache:6379/0"
    text = f"{SECRET_URL} " + "a" * SIZE
    cut = bounded(text)
    assert "hunter2" not in cut
    kept = cut.partition(" [...")[0]
    assert len(kept) <= LIMIT + SLACK
    assert cut.endswith(f" [... {SIZE + len(SECRET_URL) + 1 - LIMIT:,} more characters cut]")


@pytest.mark.parametrize("offset", [-40, -10, -1, 0, 5])
def test_a_secret_the_cut_falls_in_is_still_masked(offset: int) -> None:
    """The cut moves to a space rather than split a URL before its "@"."""
    head = "a " * ((LIMIT + offset) // 2)
    for secret in (SECRET_URL, "password=hunter2", "https://h/x?token=hunter2"):
        text = f"{head}{secret} " + "b " * LIMIT
        cut = bounded(text)
        assert "hunter2" not in cut and "hunt" not in cut, secret
        assert "more characters cut]" in cut


@pytest.fixture
def recorded_redactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every text the log handler hands to the masking function."""
    lengths: list[int] = []
    real = cli_logging.redact_text

    def recording(text: str) -> str:
        lengths.append(len(text))
        # Only lengths are asserted: a handler handing over too much fails at once, not
        # after the time masking megabytes would take.
        return real(text) if len(text) <= LIMIT + SLACK else text

    monkeypatch.setattr(cli_logging, "redact_text", recording)
    return lengths


def _log_failure(log_format: LogFormat, message: str, *, terminal: bool = False) -> str:
    stream = io.StringIO()
    # No colours: the output is compared as text.
    console = Console(file=stream, force_terminal=terminal, color_system=None, width=120)
    setup = configure_logging("info", log_format, console)
    try:
        try:
            raise ValueError(message)
        except ValueError:
            logging.getLogger("asynctasq.worker").exception("task failed: %s", message)
    finally:
        setup.restore()
    return stream.getvalue()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_masking_only_ever_sees_a_bounded_window(
    log_format: LogFormat, recorded_redactions: list[int]
) -> None:
    """Counted, not timed: whatever a record holds, the handler hands the (linear) masking
    at most the bound plus the slack at a time, message and traceback alike."""
    _log_failure(log_format, f"{SECRET_URL} " + "x://" + "a" * SIZE)
    assert recorded_redactions  # the message and the traceback were masked...
    assert max(recorded_redactions) <= LIMIT + SLACK  # ...a bounded window of each


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_megabyte_error_makes_a_bounded_masked_log_line_quickly(log_format: LogFormat) -> None:
    message = f"{SECRET_URL} " + "x://" + "a" * SIZE
    started = time.perf_counter()
    out = _log_failure(log_format, message)
    # The former handler needed hours for this (a 40 000-character run took ~2 s and the
    # cost grew with its square); this is ~0.1 s on a laptop.
    assert time.perf_counter() - started < 5.0
    assert "hunter2" not in out and "redis://:***@cache:6379/0" in out
    assert len(out) < 2 * (LIMIT + SLACK) + 4096  # message + traceback, each bounded
    assert out.count("more characters cut]") == 2
    if log_format == "json":
        doc = json.loads(out)
        assert doc["message"].endswith("more characters cut]")
        assert doc["exception"].startswith("Traceback (most recent call last):")
        assert doc["exception"].endswith("more characters cut]")


def test_on_a_terminal_the_bound_is_smaller_and_rich_shows_the_cut_text() -> None:
    message = f"{SECRET_URL} " + "[a](" * (SIZE // 4)  # markup-like text Rich is slow on
    started = time.perf_counter()
    out = _log_failure("text", message, terminal=True)
    assert time.perf_counter() - started < 5.0
    assert "hunter2" not in out
    assert "more characters cut]" in out
    assert out.count("[a](") < 2 * (TERMINAL_LIMIT + SLACK) // 4 + 100


def test_short_records_keep_their_exception_for_rich_and_are_still_masked() -> None:
    handler = logging.StreamHandler(io.StringIO())
    filter_ = cli_logging._RedactingFilter()
    try:
        raise RuntimeError(f"cannot reach {SECRET_URL}")
    except RuntimeError:
        record = logging.makeLogRecord(
            {"msg": "failed: %s", "args": (SECRET_URL,), "exc_info": sys.exc_info()}
        )
    assert filter_.filter(record)
    assert record.getMessage() == "failed: redis://:***@cache:6379/0"
    # The traceback named the password: handlers get the masked text, not the exception.
    assert record.exc_info is None and "hunter2" not in (record.exc_text or "")
    try:
        raise RuntimeError("plain failure")
    except RuntimeError:
        plain = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    assert filter_.filter(plain)
    assert plain.exc_info is not None  # nothing to hide: Rich may render it its own way
    handler.close()
