"""Queue names: one rule wherever a name enters, checked before anything is queued."""

from __future__ import annotations

import pytest

from asynctasq import init, task
from asynctasq.config import WorkerSettings
from asynctasq.core.options import check_queue
from asynctasq.core.task import Task
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import ConfigError


@task
async def noop() -> None:
    """Never runs here."""


BAD_NAMES = [
    ("a\x00b", "control or invisible characters ('\\x00', U+0000, at position 1)"),
    ("a\x1b[2Jb", "'\\x1b', U+001B"),
    ("\x7f", "U+007F"),
    ("a\x85b", "'\\x85'"),  # NEL: a C1 control, and whitespace to Python
    ("a\u202eb", "U+202E"),  # right-to-left override: the name would display reversed
    ("a\u200bb", "U+200B"),  # zero-width space
    ("a\ud800", "U+D800"),  # a lone surrogate: not encodable as UTF-8
    ("a b", "whitespace (' ' at position 1)"),
    ("a\tb", "whitespace"),
    ("line\nbreak", "whitespace"),
    ("", "non-empty"),
    ("q" * 201, "at most 200"),
]


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES)
def test_check_queue_names_the_problem(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match="queue") as info:
        check_queue(name)
    assert problem in str(info.value)


@pytest.mark.parametrize("name", ["default", "[/]", "emails.high", "ünïcödé-✓", "q" * 200])
def test_ordinary_names_pass_unchanged(name: str) -> None:
    assert check_queue(name) is name


def test_check_queue_says_which_setting() -> None:
    with pytest.raises(ValueError, match=r"^worker\.queues name must not contain control"):
        check_queue("a\x00b", "worker.queues")


async def test_dispatch_to_a_queue_with_nul_is_refused_before_anything_is_queued() -> None:
    with pytest.raises(ValueError, match=r"control or invisible characters \('\\x00'"):
        await noop().on_queue("a\x00b").dispatch()
    with pytest.raises(ValueError, match="U\\+0000"):
        task(queue="a\x00b")(noop.__wrapped__)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="U\\+0000"):

        class Nul(Task[None]):
            queue = "a\x00b"

    driver = await get_driver()
    assert await driver.queue_names() == []


def test_configured_queue_names_follow_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"task_defaults\.queue name .* U\+0000"):
        init({"task_defaults": {"queue": "a\x00b"}})
    with pytest.raises(ConfigError, match=r"worker\.queues name .* U\+0001"):
        init({"worker": {"queues": ["ok", "a\x01b"]}})
    monkeypatch.setenv("ASYNCTASQ_WORKER_QUEUES", "ok,a\x1bb")
    with pytest.raises(ConfigError, match=r"environment: worker\.queues name .* U\+001B"):
        init()
    with pytest.raises(ConfigError, match="whitespace"):
        WorkerSettings(queues=("a b",))
