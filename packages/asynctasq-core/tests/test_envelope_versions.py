"""The envelope's versions: workers write version 2 (named options), read version 1
(positional options, queued before an upgrade) and dead-letter any other version unrun."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from asynctasq import task
from asynctasq.core import envelope
from asynctasq.core.dispatch import prepare
from asynctasq.core.task import Task
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.errors import MalformedMessageError
from asynctasq.testing import MemoryQueues, memory_queues

ran: list[Any] = []


@task(
    queue="ver",
    max_attempts=4,
    retry_delay=7,
    timeout=12,
    visibility_timeout=90,
    keep_result=30,
    expires=timedelta(hours=1),
)
async def full(a: int, b: str = "x") -> None:
    ran.append((a, b))


@task(queue="ver")
async def plain(a: int) -> None:
    ran.append(a)


class Klass(Task[None]):
    queue = "ver"
    max_retries = 2

    async def handle(self) -> None:
        ran.append("klass")


@pytest.fixture
def queues() -> Iterator[MemoryQueues]:
    ran.clear()
    with memory_queues() as q:
        yield q


def test_every_setting_travels_by_name() -> None:
    doc = orjson.loads(prepare(full(1, b="y")).payload)
    assert doc["v"] == envelope.VERSION == 2
    assert doc["o"] == {
        "ma": 4,
        "rd": 7,
        "rs": "fixed",
        "rm": 3600.0,
        "rj": False,
        "vt": 90,
        "to": 12,
        "kr": 30,
    }
    env = envelope.decode(prepare(full(1, b="y")).payload)
    assert (env.max_attempts, env.retry_delay, env.retry_strategy) == (4, 7.0, "fixed")
    assert (env.retry_max_delay, env.retry_jitter) == (3600.0, False)
    assert (env.timeout, env.visibility_timeout, env.keep_result) == (12.0, 90.0, 30.0)
    assert env.expires_at > 0 and env.args == [1] and env.kwargs == {"b": "y"}


def test_settings_left_unset_are_absent_not_null() -> None:
    doc = orjson.loads(prepare(plain(1)).payload)
    assert set(doc["o"]) == {"ma", "rd", "rs", "rm", "rj", "vt"}  # no timeout, no result
    env = envelope.decode(prepare(plain(1)).payload)
    assert env.timeout is None and env.keep_result == 0.0
    assert (env.retry_strategy, env.retry_jitter) == ("exponential", True)


def v1_of(payload: bytes) -> dict[str, Any]:
    """The message a worker before version 2 wrote for the same dispatch."""
    doc: dict[str, Any] = orjson.loads(payload)
    o = doc["o"]
    doc["v"] = 1
    doc["o"] = [o["ma"], o["rd"], o["rs"], o["rm"], o["rj"], o.get("to"), o["vt"]]
    if "kr" in o:
        doc["o"].append(o["kr"])
    return doc


@pytest.mark.parametrize("make", [lambda: full(1, b="y"), lambda: plain(5), Klass])
def test_a_version_1_message_reads_as_its_version_2_twin(make: Any) -> None:
    payload = prepare(make()).payload
    assert envelope.decode(orjson.dumps(v1_of(payload))) == envelope.decode(payload)


async def test_version_1_messages_queued_before_an_upgrade_still_run(
    queues: MemoryQueues,
) -> None:
    for i, t in enumerate([full(1, b="y"), plain(5), Klass()]):
        doc = v1_of(prepare(t).payload)
        await queues.driver.enqueue(OutgoingMessage(f"old-{i}", "ver", orjson.dumps(doc)))
    outcomes = await queues.run_until_idle()
    assert sorted(map(str, ran)) == sorted(map(str, [(1, "y"), 5, "klass"]))
    assert [o.state for o in outcomes] == ["succeeded"] * 3


@pytest.mark.parametrize("version", [3, 0, -1, "2", 2.5, True, None, [2], {"v": 2}])
async def test_an_unknown_version_is_dead_lettered_naming_it(
    queues: MemoryQueues, version: Any
) -> None:
    doc = orjson.loads(prepare(plain(1)).payload)
    doc["v"] = version
    await queues.driver.enqueue(OutgoingMessage("future-1", "ver", orjson.dumps(doc)))
    await queues.run_until_idle()
    assert ran == []
    [letter] = queues.driver.dead_letters()
    message = letter.failure.message
    assert f"unsupported envelope version {version!r}" in message
    assert "this worker reads versions 1 and 2" in message


def test_a_message_without_a_version_is_refused() -> None:
    doc = orjson.loads(prepare(plain(1)).payload)
    del doc["v"]
    with pytest.raises(MalformedMessageError, match="unsupported envelope version None"):
        envelope.decode(orjson.dumps(doc))


@pytest.mark.parametrize(
    ("version", "options", "problem"),
    [
        (2, [3, 0, "fixed", 0, False, None, 30], "not an object of settings"),
        (2, None, "not an object of settings"),
        (1, {"ma": 3}, "not a list of 7 or 8 settings"),
        (1, [3, 0, "fixed", 0, False, None], "not a list of 7 or 8 settings"),
        (1, [3, 0, "fixed", 0, False, None, 30, 0, 0], "not a list of 7 or 8 settings"),
    ],
)
def test_options_in_the_other_versions_shape_are_malformed(
    version: int, options: Any, problem: str
) -> None:
    doc = {"v": version, "task": "m:t", "o": options, "args": [], "kwargs": {}}
    with pytest.raises(MalformedMessageError, match=problem):
        envelope.decode(orjson.dumps(doc))


def test_unknown_keys_are_ignored_so_optional_ones_can_be_added() -> None:
    payload = prepare(plain(1)).payload
    doc = orjson.loads(payload)
    doc["o"]["zz"] = {"anything": [1, 2]}
    doc["zz"] = "later"
    assert envelope.decode(orjson.dumps(doc)) == envelope.decode(payload)


def test_the_documented_example_is_a_valid_envelope() -> None:
    docs = Path(__file__).parents[3] / "docs" / "extending" / "drivers.md"
    section = docs.read_text().split("## The payload (wire format)", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    env = envelope.decode(example.encode())
    assert orjson.loads(example)["v"] == envelope.VERSION
    assert (env.task, env.max_attempts, env.timeout) == ("app.tasks:send_email", 3, 30.0)
    assert env.args == ["ada@example.com"]
