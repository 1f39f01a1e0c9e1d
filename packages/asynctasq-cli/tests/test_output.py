"""Masking secrets, one-line errors, and the log formats."""

from __future__ import annotations

import json
import logging

import pytest

from asynctasq.errors import ConfigError
from asynctasq_cli.logging import JsonFormatter, parse_level
from asynctasq_cli.output import CliError, describe, exit_code_for, one_line
from asynctasq_cli.redact import is_secret_name, redact_setting, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:p%40ss@h", "redis://user:***@h"),
        ("redis://u:p@ss@h/0", "redis://u:***@h/0"),
        ("postgresql://u:secret@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("host=h password=abc user=u", "host=h password=*** user=u"),
        ("https://h/x?token=abc&a=1", "https://h/x?token=***&a=1"),
        ("sqs?aws_secret_access_key=XYZ", "sqs?aws_secret_access_key=***"),
        ("redis://h:6379", "redis://h:6379"),
        ("mysql://root@h:3306/test", "mysql://root@h:3306/test"),
        ("http://h:80?x=a@b", "http://h:80?x=a@b"),
        ("see a:b@c and redis://:x@h/", "see a:b@c and redis://:***@h/"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("ssl_password", True),
        ("aws_secret_access_key", True),
        ("aws_access_key_id", True),
        ("aws_session_token", True),
        ("api_key", True),
        ("secret", True),
        ("token", True),
        ("passphrase", True),
        ("key_prefix", False),
        ("ssl_keyfile", False),
        ("prefix", False),
        ("url", False),
        ("dsn", False),
        ("username", False),
        ("queue_table", False),
        ("token_ttl", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redact_setting() -> None:
    assert redact_setting("password", "x") == "***"
    assert redact_setting("password", None) is None
    assert redact_setting("url", "redis://:x@h") == "redis://:***@h"
    assert redact_setting("db", 3) == 3


def test_one_line_errors() -> None:
    assert one_line(RuntimeError("first\nsecond")) == "first"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert one_line(KeyError("k")) == "k"
    assert one_line(ValueError("bad redis://:pw@h")) == "bad redis://:***@h"
    assert describe(ValueError("nope")) == "ValueError: nope"
    assert describe(ConfigError("bad setting")) == "bad setting"
    assert exit_code_for(ConfigError("x")) == 2
    assert exit_code_for(CliError("x", exit_code=3)) == 3
    assert exit_code_for(OSError("x")) == 1


def test_json_formatter() -> None:
    record = logging.makeLogRecord(
        {
            "name": "asynctasq.x",
            "levelname": "WARNING",
            "msg": "hello %s",
            "args": ("you",),
            "queues": ["a"],
        }
    )
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "hello you" and doc["level"] == "warning"
    assert doc["logger"] == "asynctasq.x" and doc["queues"] == ["a"]
    assert doc["time"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exception"]


def test_parse_level() -> None:
    assert parse_level("DEBUG") == logging.DEBUG
    assert parse_level(" warning ") == logging.WARNING
    with pytest.raises(ValueError, match="unknown log level"):
        parse_level("verbose")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_configured_logging_masks_passwords_and_restores(log_format: str) -> None:
    import io

    from rich.console import Console

    from asynctasq_cli.logging import configure_logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    stream = io.StringIO()
    setup = configure_logging("info", log_format, Console(file=stream))  # type: ignore[arg-type]
    try:
        logging.getLogger("some.library").info("connecting to %s", "redis://:hunter2@h:1/0")
        logging.getLogger("some.library").debug("hidden at info")
    finally:
        setup.restore()
    out = stream.getvalue()
    assert "hunter2" not in out and "redis://:***@h:1/0" in out
    assert "hidden" not in out
    assert (list(root.handlers), root.level) == before
