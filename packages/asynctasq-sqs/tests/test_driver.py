"""SQS-specific behaviour beyond the conformance suite, against moto on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from asynctasq.drivers.base import Delivery, Failure, OutgoingMessage
from asynctasq.worker import Worker
from asynctasq_sqs import MessageTooLargeError, QueueNotFoundError, SQSDriver
from asynctasq_sqs import _attributes as attr

MakeDriver = Callable[..., Awaitable[SQSDriver]]


def _msg(queue: str, payload: bytes = b'{"x":1}', **kw: Any) -> OutgoingMessage:
    return OutgoingMessage(task_id=str(uuid.uuid4()), queue=queue, payload=payload, **kw)


async def _take(
    driver: SQSDriver, queues: list[str], want: int, within: float = 8.0
) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < want and time.monotonic() < deadline:
        got += await driver.dequeue(queues, limit=want - len(got), wait=1.0)
    return got


def _spy(driver: SQSDriver, method: str, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the keyword arguments of every call the driver's client makes to `method`."""
    client = driver._client
    original = getattr(client, method)
    calls: list[dict[str, Any]] = []

    async def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return await original(**kwargs)

    monkeypatch.setattr(client, method, spy)
    return calls


# -- dispatch ------------------------------------------------------------------------------
async def test_too_large_message_is_refused_at_dispatch(driver: SQSDriver) -> None:
    big = _msg("big", b"x" * (300 * 1024))
    with pytest.raises(MessageTooLargeError, match=r"307\d\d\d bytes.*limit of 262144 bytes"):
        await driver.enqueue(big)
    with pytest.raises(MessageTooLargeError, match=big.task_id):
        await driver.enqueue_many([_msg("big"), big])
    assert await driver.dequeue(["big"], limit=10, wait=0) == []  # nothing was sent


async def test_payload_just_under_the_limit_is_accepted(driver: SQSDriver) -> None:
    payload = b"y" * (256 * 1024 - 400)
    await driver.enqueue(_msg("edge", payload))
    [delivery] = await _take(driver, ["edge"], 1)
    assert delivery.payload == payload
    await driver.retry(delivery, delay=0)  # the retry's extra attributes still fit
    [again] = await _take(driver, ["edge"], 1)
    assert (again.payload, again.attempts) == (payload, 1)


async def test_enqueue_many_sends_batches_of_ten(
    driver: SQSDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy(driver, "send_message_batch", monkeypatch)
    await driver.enqueue_many([_msg("a") for _ in range(25)] + [_msg("b") for _ in range(3)])
    assert sorted(len(c["Entries"]) for c in calls) == [3, 5, 10, 10]
    assert len(await _take(driver, ["a", "b"], 28)) == 28


async def test_utf8_payload_travels_as_text(driver: SQSDriver) -> None:
    payload = json.dumps({"to": "zoë@example.com"}, ensure_ascii=False).encode()
    message = _msg("text", payload)
    await driver.enqueue(message)
    client = driver._client
    assert client is not None
    url = (await client.get_queue_url(QueueName=driver._urls.sqs_name("text")))["QueueUrl"]
    reply = await client.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )
    [raw] = reply["Messages"]
    assert raw["Body"] == payload.decode()
    assert raw["MessageAttributes"][attr.TASK_ID]["StringValue"] == message.task_id
    assert attr.ENCODING not in raw["MessageAttributes"]


# -- dequeue -------------------------------------------------------------------------------
async def test_each_task_gets_its_own_lease(make_driver: MakeDriver) -> None:
    driver = await make_driver()
    await driver.enqueue(_msg("vt", visibility_timeout=5))
    await driver.enqueue(_msg("vt", visibility_timeout=50))
    got = await _take(driver, ["vt"], 2)
    assert sorted(d.visibility_timeout for d in got) == [5.0, 50.0]

    fixed = await make_driver(visibility_timeout=7)
    await fixed.enqueue(_msg("vt", visibility_timeout=50))
    assert [d.visibility_timeout for d in await _take(fixed, ["vt"], 1)] == [7.0]


async def test_one_dequeue_can_take_more_than_ten(driver: SQSDriver) -> None:
    await driver.enqueue_many([_msg("many") for _ in range(25)])
    got = await driver.dequeue(["many"], limit=25, wait=1)
    assert 10 < len(got) <= 25
    assert len({d.task_id for d in got}) == len(got)


async def test_early_message_is_redeferred_not_delivered(driver: SQSDriver) -> None:
    """A delay past SQS's 900 s: the message carries its due time and is sent again."""
    await driver.enqueue(_msg("early"))  # creates the queue
    [first] = await _take(driver, ["early"], 1)
    await driver.ack([first])
    client = driver._client
    assert client is not None
    url = first.receipt.queue_url
    task_id, due = str(uuid.uuid4()), time.time() + 2.5
    await client.send_message(
        QueueUrl=url,
        MessageBody='{"late":true}',
        MessageAttributes={
            attr.TASK_ID: attr.string(task_id),
            attr.VISIBILITY: attr.number(30),
            attr.DUE: attr.number(round(due, 3)),
        },
    )
    assert await driver.dequeue(["early"], limit=1, wait=0) == []
    [stats] = await driver.stats(["early"])
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 1, 0)  # sent again, old gone
    [late] = await _take(driver, ["early"], 1, within=8)
    assert time.time() >= due
    assert (late.task_id, late.attempts, late.payload) == (task_id, 0, b'{"late":true}')


# attribute -> (DataType, value): each in a message of its own, amid well-formed ones
FORGED_ATTRIBUTES = {
    "attempts-nan": (attr.ATTEMPTS, "String", "nan"),
    "attempts-word": (attr.ATTEMPTS, "String", "abc"),
    "attempts-negative": (attr.ATTEMPTS, "Number", "-3"),
    "visibility-inf": (attr.VISIBILITY, "String", "inf"),
    "due-inf": (attr.DUE, "String", "inf"),
    "due-far": (attr.DUE, "Number", "1e120"),
}


async def test_unreadable_attributes_are_dead_lettered_and_their_batch_delivered(
    driver: SQSDriver,
) -> None:
    """Anyone who can send to the queue writes the attributes: one message whose numbers
    cannot be read must not fail the receive (SQS has leased its whole batch by then, and
    counts the receive against every message in it). It is dead-lettered, never run."""
    good = [_msg("forged") for _ in range(3)]
    await driver.enqueue_many(good[:2])
    [probe] = await _take(driver, ["forged"], 1)
    await driver.release([probe])
    client = driver._client
    assert client is not None
    url = probe.receipt.queue_url
    for name, (attribute, kind, value) in FORGED_ATTRIBUTES.items():
        await client.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"forged": name}),
            MessageAttributes={
                attr.TASK_ID: attr.string(name),
                attribute: {"DataType": kind, "StringValue": value},
            },
        )
    await driver.enqueue(good[2])
    got = await _take(driver, ["forged"], 3, within=15)
    assert sorted(d.task_id for d in got) == sorted(m.task_id for m in good)
    assert all(d.attempts == 0 for d in got)
    await driver.ack(got)
    dead = await driver.list_dead_letters(queue="forged", limit=100)
    assert sorted(d.task_id for d in dead) == sorted(FORGED_ATTRIBUTES)
    for letter in dead:
        assert letter.failure.exception_type == "asynctasq.errors.MalformedMessageError"
        assert "cannot be read" in letter.failure.message
        assert json.loads(letter.payload) == {"forged": letter.task_id}  # the body, kept
    [stats] = await driver.stats(["forged"])
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 0, 0)


async def test_a_twelve_hour_lease_is_set_and_the_others_of_its_batch_too(
    driver: SQSDriver, caplog: pytest.LogCaptureFixture
) -> None:
    """SQS counts its 12-hour limit from the receive: asking for all of it a moment later
    was refused, and with it every other lease correction of the batch."""
    await driver.enqueue(_msg("long"))
    [probe] = await _take(driver, ["long"], 1)
    await driver.release([probe])
    client = driver._client
    assert client is not None
    await client.send_message(
        QueueUrl=probe.receipt.queue_url,
        MessageBody=json.dumps({"long": True}),
        MessageAttributes={
            attr.TASK_ID: attr.string("twelve-hours"),
            attr.VISIBILITY: {"DataType": "Number", "StringValue": "43200"},
        },
    )
    with caplog.at_level(logging.WARNING, "asynctasq_sqs"):
        got = {d.task_id: d for d in await _take(driver, ["long"], 2, within=15)}
    assert set(got) == {probe.task_id, "twelve-hours"}
    assert got["twelve-hours"].visibility_timeout > 43_000
    assert "could not set per-task leases" not in caplog.text
    await driver.ack(list(got.values()))


async def test_retry_with_a_long_delay_waits(driver: SQSDriver) -> None:
    await driver.enqueue(_msg("slow"))
    [delivery] = await _take(driver, ["slow"], 1)
    await driver.retry(delivery, delay=3 * 3600)
    assert await driver.dequeue(["slow"], limit=1, wait=0) == []
    [stats] = await driver.stats(["slow"])
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 1, 0)


async def test_several_queues_long_polled_together_keep_the_extra(
    make_driver: MakeDriver,
) -> None:
    driver = await make_driver()
    await driver.enqueue_many([_msg("qa"), _msg("qb")])  # create both queues
    await driver.ack(await _take(driver, ["qa", "qb"], 2))
    waiter = asyncio.create_task(driver.dequeue(["qa", "qb"], limit=1, wait=5))
    await asyncio.sleep(0.5)  # both queues empty: the waiter long-polls both
    await driver.enqueue_many([_msg("qa"), _msg("qb")])
    first = await asyncio.wait_for(waiter, 10)
    assert len(first) == 1
    started = time.monotonic()
    second = await driver.dequeue(["qa", "qb"], limit=5, wait=5)
    assert time.monotonic() - started < 0.5  # the other one was already here
    assert {d.queue for d in first + second} == {"qa", "qb"}
    assert second[0].visibility_timeout < 3600  # what is left of the lease


async def test_close_gives_back_held_messages(make_driver: MakeDriver, sqs_endpoint: str) -> None:
    driver = await make_driver()
    await driver.enqueue_many([_msg("ha"), _msg("hb")])
    await driver.ack(await _take(driver, ["ha", "hb"], 2))
    waiter = asyncio.create_task(driver.dequeue(["ha", "hb"], limit=1, wait=5))
    await asyncio.sleep(0.5)
    await driver.enqueue_many([_msg("ha"), _msg("hb")])
    [taken] = await asyncio.wait_for(waiter, 10)
    await driver.close()  # one message was held: it goes back, uncounted
    other = SQSDriver(
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url=sqs_endpoint,
        queue_name_prefix=driver._urls.name_prefix,
    )
    try:
        [back] = await _take(other, ["ha", "hb"], 1)
        assert back.queue != taken.queue
        assert back.attempts == 0
    finally:
        await other.close()


# -- queues --------------------------------------------------------------------------------
async def test_missing_queue_is_a_clear_error_without_create(make_driver: MakeDriver) -> None:
    driver = await make_driver(create_queues=False)
    with pytest.raises(QueueNotFoundError, match="create_queues=True"):
        await driver.enqueue(_msg("nowhere"))
    [stats] = await driver.stats(["nowhere"])
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)
    assert await driver.list_dead_letters(queue="nowhere") == []


async def test_created_queue_redrives_to_its_dead_letter_queue(make_driver: MakeDriver) -> None:
    driver = await make_driver(max_receive_count=4)
    await driver.enqueue(_msg("made"))
    client = driver._client
    assert client is not None
    url = (await client.get_queue_url(QueueName=driver._urls.sqs_name("made")))["QueueUrl"]
    reply = await client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = json.loads(reply["Attributes"]["RedrivePolicy"])
    assert policy["deadLetterTargetArn"].endswith(driver._urls.sqs_name("made") + "-dead")
    assert int(policy["maxReceiveCount"]) == 4
    assert await driver.queue_names() == ["made"]


async def test_queue_url_prefix_needs_no_lookup(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    creator = await make_driver()
    await creator.enqueue(_msg("pre"))
    [delivery] = await _take(creator, ["pre"], 1)
    await creator.release([delivery])
    url_prefix = delivery.receipt.queue_url.rsplit("/", 1)[0]
    driver = await make_driver(
        queue_name_prefix=creator._urls.name_prefix,
        queue_url_prefix=url_prefix,
        create_queues=False,
    )
    lookups = _spy(driver, "get_queue_url", monkeypatch)
    [again] = await _take(driver, ["pre"], 1)
    assert again.task_id == delivery.task_id
    await driver.ack([again])
    assert lookups == []


def test_reserved_and_invalid_queue_names_are_refused() -> None:
    driver = SQSDriver(queue_name_prefix="p-")
    with pytest.raises(ValueError, match="dead-letter"):
        driver._urls.sqs_name("jobs-dead")
    with pytest.raises(ValueError, match="1-80 characters"):
        driver._urls.sqs_name("has space")
    with pytest.raises(ValueError, match="1-80 characters"):
        driver._urls.sqs_name("x" * 80)


async def test_a_worker_on_a_queue_sqs_cannot_hold_stops_at_start() -> None:
    """Not a fetch error retried for ever: the name never becomes valid. Checked before the
    worker connects, so no endpoint is needed."""
    driver = SQSDriver(queue_name_prefix="p-", endpoint_url="http://127.0.0.1:9")
    worker = Worker(driver, queues=["fine", "has.dot"], burst=True)
    with pytest.raises(ValueError, match="1-80 characters"):
        await asyncio.wait_for(worker.run(), 5)


# -- dead letters ----------------------------------------------------------------------------
async def test_sqs_redrive_shows_up_as_a_lost_task(make_driver: MakeDriver) -> None:
    driver = await make_driver(max_receive_count=1)
    message = _msg("lost", visibility_timeout=1)
    await driver.enqueue(message)
    [_] = await _take(driver, ["lost"], 1)  # never settled, as if the worker died
    await asyncio.sleep(1.5)
    assert await driver.dequeue(["lost"], limit=1, wait=1) == []  # SQS moved it
    [dead] = await driver.list_dead_letters(queue="lost")
    assert (dead.task_id, dead.queue, dead.payload) == (message.task_id, "lost", message.payload)
    assert dead.failure.exception_type == "asynctasq.errors.TaskLostError"
    assert dead.attempts >= 1
    assert await driver.retry_dead_letters(queue="lost") == 1
    [back] = await _take(driver, ["lost"], 1)
    assert (back.task_id, back.attempts) == (message.task_id, 0)


async def test_dead_letter_cuts_a_huge_traceback_to_fit(driver: SQSDriver) -> None:
    payload = b"p" * (200 * 1024)
    await driver.enqueue(_msg("tb", payload))
    [delivery] = await _take(driver, ["tb"], 1)
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 20_000 + "ValueError: boom"
    await driver.dead_letter(delivery, Failure("builtins.ValueError", "boom\x00!", traceback))
    [dead] = await driver.list_dead_letters(queue="tb")
    assert dead.payload == payload
    assert dead.failure.message == "boom\ufffd!"
    assert dead.failure.traceback.endswith("ValueError: boom")
    assert "bytes cut" in dead.failure.traceback


# name -> attributes of a message written straight into a dead-letter queue
FORGED_DEAD = {
    "encoding-unknown": {attr.ENCODING: ("String", "rot13")},
    "base64-broken": {attr.ENCODING: ("String", "base64")},
    "failed-at-nan": {attr.FAILED_AT: ("String", "nan")},
    "failed-at-huge": {attr.FAILED_AT: ("Number", "1e300")},
    "attempts-inf": {attr.ATTEMPTS: ("String", "inf")},
}


async def test_an_unreadable_dead_letter_hides_no_other(driver: SQSDriver) -> None:
    """Anyone who can send to a dead-letter queue writes these: each is listed with what
    can be read, and the others still are."""
    message = _msg("dlx")
    await driver.enqueue(message)
    [delivery] = await _take(driver, ["dlx"], 1)
    await driver.dead_letter(delivery, Failure("app.Boom", "boom", "tb"))
    client = driver._client
    assert client is not None
    url = await driver._urls.dead_url(client, "dlx")
    for name, attributes in FORGED_DEAD.items():
        await client.send_message(
            QueueUrl=url,
            MessageBody="abc",
            MessageAttributes={
                attr.TASK_ID: attr.string(name),
                attr.ERROR_TYPE: attr.string("app.Forged"),
                **{k: {"DataType": t, "StringValue": v} for k, (t, v) in attributes.items()},
            },
        )
    listed = {d.task_id: d for d in await driver.list_dead_letters(queue="dlx", limit=100)}
    assert set(listed) == {message.task_id, *FORGED_DEAD}
    assert listed[message.task_id].payload == message.payload
    assert listed["encoding-unknown"].payload == b"abc"  # the body as it was sent
    assert listed["attempts-inf"].attempts == 0
    assert len(await driver.list_dead_letters(limit=100)) == len(FORGED_DEAD) + 1


async def test_purge_all_dead_letters_of_all_queues(driver: SQSDriver) -> None:
    for queue in ("d1", "d2"):
        await driver.enqueue(_msg(queue))
        [delivery] = await _take(driver, [queue], 1)
        await driver.dead_letter(delivery, Failure("E", "m", "tb"))
    assert len(await driver.list_dead_letters()) == 2
    assert await driver.purge_dead_letters() == 2
    assert await driver.list_dead_letters() == []


async def test_settling_a_lost_lease_does_not_raise(driver: SQSDriver) -> None:
    await driver.enqueue(_msg("gone"))
    [delivery] = await _take(driver, ["gone"], 1)
    await driver.ack([delivery])
    await driver.ack([delivery])
    await driver.extend([delivery], 30)


async def test_a_lease_is_extended_no_further_than_12_hours_from_its_receive(
    driver: SQSDriver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS refuses a lease past 12 hours from the receive (moto does not check): a task that
    ran that long gets what is left, with a warning, instead of a refusal that kept the
    lease where it was; one past the limit asks for nothing."""
    for _ in range(2):
        await driver.enqueue(_msg("long"))
    spy = _spy(driver, "change_message_visibility_batch", monkeypatch)
    first, second = await _take(driver, ["long"], 2)
    spy.clear()  # the receive's own lease corrections
    assert isinstance(first.receipt, attr.SQSReceipt)
    limit = attr.MAX_VISIBILITY - attr.LEASE_LIMIT_MARGIN
    first.receipt = dataclasses.replace(first.receipt, received_at=time.monotonic() - limit + 3)
    second.receipt = dataclasses.replace(second.receipt, received_at=time.monotonic() - limit)
    with caplog.at_level(logging.WARNING, "asynctasq_sqs"):
        await driver.extend([first, second], 3600)
    [call] = spy
    assert [e["VisibilityTimeout"] for e in call["Entries"]] == [2]
    assert caplog.text.count("leased for nearly 12 hours") == 2
    assert first.task_id in caplog.text
    assert [d.task_id for d in await _take(driver, ["long"], 1, within=10)] == [first.task_id]
    await driver.extend([second], 3600)  # no request, no error
    assert len(spy) == 1


# -- event loops -----------------------------------------------------------------------------
def test_a_driver_made_at_import_time_works_in_a_second_event_loop(sqs_endpoint: str) -> None:
    driver = SQSDriver(
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url=sqs_endpoint,
        queue_name_prefix=f"t{uuid.uuid4().hex[:10]}-",
        create_queues=True,
    )
    message = _msg("loops")

    async def first() -> None:
        await driver.enqueue(message)
        await driver.close()

    async def second() -> list[Delivery]:
        try:
            return await _take(driver, ["loops"], 1)
        finally:
            await driver.close()

    asyncio.run(first())
    assert [d.task_id for d in asyncio.run(second())] == [message.task_id]
    asyncio.run(driver.enqueue(_msg("loops")))  # left connected to a loop that ended
    assert len(asyncio.run(second())) == 1


async def test_without_a_region_anywhere_the_driver_uses_us_east_1(
    sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """``ASYNCTASQ_SQS_REGION`` defaults to us-east-1; botocore alone refuses to start."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    driver = SQSDriver(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url=sqs_endpoint,
        queue_name_prefix=f"t{uuid.uuid4().hex[:10]}-",
        create_queues=True,
    )
    try:
        await driver.enqueue(message := _msg("regionless"))
        assert [d.task_id for d in await _take(driver, ["regionless"], 1)] == [message.task_id]
        assert driver._client is not None
        assert driver._client.meta.region_name == "us-east-1"
    finally:
        await driver.close()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # botocore's lookup still counts
    named = SQSDriver(endpoint_url=sqs_endpoint, aws_access_key_id="t", aws_secret_access_key="t")
    try:
        await named.connect()
        assert named._client is not None and named._client.meta.region_name == "eu-west-1"
    finally:
        await named.close()
