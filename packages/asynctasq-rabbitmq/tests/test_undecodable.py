"""Messages whose AMQP frames the client library cannot decode (anyone who can publish can
send them; RabbitMQ stores them as they are). Decoding happens in the connection's reader,
where an error used to close the connection: the message came back at once, and the worker
never ran anything again. Such a message is dead-lettered with the reason; the rest runs."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from typing import Any

from asynctasq.drivers.base import Delivery, OutgoingMessage
from asynctasq_rabbitmq import RabbitMQDriver

MakeDriver = Callable[..., RabbitMQDriver]

# Publishes with pamqp's encoder patched to write raw values, in a process of its own so the
# patch cannot reach the driver under test.
_FORGER = textwrap.dedent(
    """
    import asyncio, sys
    import aiormq, aiormq.channel
    import pamqp.encode as enc, pamqp.common as common
    from pamqp.commands import Basic

    sys.setrecursionlimit(20000)
    plain_string = enc._string
    enc._string = lambda encoder, v: (
        encoder.pack(len(v)) + v if isinstance(v, bytes) else plain_string(encoder, v)
    )
    plain_timestamp = enc.timestamp
    def timestamp(v):
        return common.Struct.timestamp.pack(v) if isinstance(v, int) else plain_timestamp(v)
    enc.timestamp = timestamp
    enc.METHODS["timestamp"] = timestamp
    aiormq.channel._check_routing_key = lambda key: None

    async def main(url, queue, exchange, only=""):
        connection = await aiormq.connect(url)
        channel = await connection.channel()
        if only:
            await channel.basic_publish(
                only.encode(),
                routing_key=queue,
                properties=Basic.Properties(delivery_mode=2, message_id=b"\\xff"),
            )
            await connection.close()
            return
        await channel.exchange_declare(exchange, exchange_type="topic", auto_delete=True)
        await channel.queue_bind(queue, exchange, routing_key="#")
        nested = []
        for _ in range(3000):
            nested = [nested]
        forged = {
            "message-id-not-utf-8": dict(message_id=b"\\xff\\xfe-bad"),
            "timestamp-past-9999": dict(message_id="ts", timestamp=0xFFFFFFFFFFFFFFF0),
            "type-not-utf-8": dict(message_id="ty", message_type=b"\\xff"),
            "headers-nested-3000-deep": dict(message_id="deep", headers={"x": nested}),
        }
        for name, properties in forged.items():
            await channel.basic_publish(
                name.encode(),
                routing_key=queue,
                properties=Basic.Properties(delivery_mode=2, **properties),
            )
        await channel.basic_publish(
            b"routing-key-not-utf-8",
            exchange=exchange,
            routing_key=b"\\xff\\xfe",
            properties=Basic.Properties(delivery_mode=2, message_id="rk"),
        )
        await channel.exchange_delete(exchange)
        await connection.close()

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_undecodable_messages_are_dead_lettered_and_the_rest_runs(
    make_driver: MakeDriver, rabbitmq_url: str
) -> None:
    driver = make_driver()
    await driver.enqueue(OutgoingMessage("before", "hostile", b"good-before"))
    await _forge(rabbitmq_url, driver._topology.work_queue("hostile"))
    await driver.enqueue(OutgoingMessage("after", "hostile", b"good-after"))
    connection = await driver._amqp()

    bodies: list[bytes] = []
    deadline = time.monotonic() + 15
    while len(bodies) < 3 and time.monotonic() < deadline:
        got = await driver.dequeue(["hostile"], limit=10, wait=0.5)
        bodies += [bytes(d.payload) for d in got]
        await driver.ack(got)
    # the routing key is the publisher's and never read back: that message is fine
    assert sorted(bodies) == [b"good-after", b"good-before", b"routing-key-not-utf-8"]

    dead = []
    while len(dead) < 4 and time.monotonic() < deadline:
        dead = await driver.list_dead_letters(queue="hostile", limit=10)
        await asyncio.sleep(0.1)
    assert sorted(bytes(d.payload) for d in dead) == [
        b"headers-nested-3000-deep",
        b"message-id-not-utf-8",
        b"timestamp-past-9999",
        b"type-not-utf-8",
    ]
    for letter in dead:
        assert letter.failure.exception_type == "asynctasq.errors.MalformedMessageError"
        assert "AMQP properties of this message cannot be read" in letter.failure.message
    assert await driver._amqp() is connection  # never lost on the way


async def _forge(rabbitmq_url: str, queue: str, *only: str) -> None:
    exchange = f"asynctasq-test-forger-{uuid.uuid4().hex[:8]}"
    forger = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FORGER, rabbitmq_url, queue, exchange, *only, stderr=subprocess.PIPE
    )
    _, err = await forger.communicate()
    assert forger.returncode == 0, err.decode()


async def test_an_unreadable_message_buffered_at_close_is_dead_lettered_once(
    make_driver: MakeDriver, rabbitmq_url: str
) -> None:
    """Left to come back with the connection, not dead-lettered on the way out (whose ack
    could not reach the broker any more) nor released with readable properties."""
    first = make_driver(prefetch_count=10)
    await first.enqueue(OutgoingMessage("good-0", "closing", b"good-0"))
    await _forge(rabbitmq_url, first._topology.work_queue("closing"), "unreadable")
    await first.enqueue(OutgoingMessage("good-1", "closing", b"good-1"))
    deadline = time.monotonic() + 10
    got = await first.dequeue(["closing"], limit=1, wait=5)
    assert [bytes(d.payload) for d in got] == [b"good-0"]
    while first._consumer is not None and first._consumer.in_flight("closing") < 3:
        assert time.monotonic() < deadline, "the rest never reached the buffer"
        await asyncio.sleep(0.05)
    await first.ack(got)
    await first.close()

    second = make_driver()
    bodies: list[bytes] = []
    while len(bodies) < 1 and time.monotonic() < deadline:
        taken = await second.dequeue(["closing"], limit=10, wait=0.5)
        bodies += [bytes(d.payload) for d in taken]
        await second.ack(taken)
    assert bodies == [b"good-1"]  # released at close, and run once
    dead: list[bytes] = []
    while not dead and time.monotonic() < deadline:
        dead = [bytes(d.payload) for d in await second.list_dead_letters(queue="closing")]
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a second copy would show up by now
    assert [bytes(d.payload) for d in await second.list_dead_letters(queue="closing")] == [
        b"unreadable"
    ]


async def test_a_purge_drops_an_unreadable_buffered_message(
    make_driver: MakeDriver, rabbitmq_url: str
) -> None:
    driver = make_driver(prefetch_count=10)
    await driver.enqueue(OutgoingMessage("good-0", "purged", b"good-0"))
    await _forge(rabbitmq_url, driver._topology.work_queue("purged"), "unreadable")
    got = await driver.dequeue(["purged"], limit=1, wait=5)
    assert [bytes(d.payload) for d in got] == [b"good-0"]
    deadline = time.monotonic() + 10
    while driver._consumer is not None and driver._consumer.in_flight("purged") < 2:
        assert time.monotonic() < deadline, "the unreadable message never reached the buffer"
        await asyncio.sleep(0.05)
    await driver.ack(got)
    assert await driver.purge("purged") == 1
    await asyncio.sleep(0.5)
    assert await driver.list_dead_letters(queue="purged") == []
    [stats] = await driver.stats(["purged"])
    assert (stats.ready, stats.in_flight) == (0, 0)


async def test_other_connections_in_the_process_are_left_as_they_were(
    make_driver: MakeDriver, rabbitmq_url: str
) -> None:
    """The recovery is the driver's own: an application's connection must not get a message
    with its properties silently dropped (reply_to, correlation_id...)."""
    import aiormq
    from aiormq.exceptions import AMQPError

    driver = make_driver()
    await driver.connect()  # installs the recovery
    queue = driver._topology.work_queue("theirs")
    await driver.enqueue(OutgoingMessage("declare", "theirs", b"declare"))
    [declare] = await _take_one(driver, "theirs")
    await driver.ack([declare])
    await driver.close()
    await _forge(rabbitmq_url, queue, "theirs")
    connection = await aiormq.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        try:
            await asyncio.wait_for(channel.basic_get(queue, no_ack=True), 5)
        except (AMQPError, ConnectionError):
            pass  # as without the driver: that connection cannot read the message
        else:
            raise AssertionError("the undecodable message was read on a foreign connection")
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _take_one(driver: RabbitMQDriver, queue: str) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        got = await driver.dequeue([queue], limit=1, wait=0.5)
    return got


async def test_the_recovery_outlives_a_reconnect(
    make_driver: MakeDriver, tcp_proxy: Any, rabbitmq_url: str
) -> None:
    """The connection aio-pika opens again after an outage reads frames the same way."""
    driver = make_driver(url=tcp_proxy.url(rabbitmq_url), reconnect_interval=0.2)
    await driver.enqueue(OutgoingMessage("before", "again", b"before"))
    before = await _take_one(driver, "again")
    assert [bytes(d.payload) for d in before] == [b"before"]
    await driver.ack(before)
    await tcp_proxy.cut()
    await asyncio.sleep(0.3)
    await tcp_proxy.start()
    await _forge(rabbitmq_url, driver._topology.work_queue("again"), "after-outage")
    await driver.enqueue(OutgoingMessage("after", "again", b"after"))  # waits for the reconnect
    got = await _take_one(driver, "again")
    assert [bytes(d.payload) for d in got] == [b"after"]
    await driver.ack(got)
    deadline = time.monotonic() + 10
    dead: list[bytes] = []
    while not dead and time.monotonic() < deadline:
        dead = [bytes(d.payload) for d in await driver.list_dead_letters(queue="again")]
        await asyncio.sleep(0.1)
    assert dead == [b"after-outage"]
