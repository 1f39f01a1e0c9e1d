"""Messages whose AMQP frames the client library cannot decode (anyone who can publish can
send them; RabbitMQ stores them as they are). Decoding happens in the connection's reader,
where an error used to close the connection: the message came back at once, and the worker
never ran anything again. Such a message is dead-lettered with the reason; the rest runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable

from asynctasq.drivers.base import OutgoingMessage
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

    async def main(url, queue, exchange):
        connection = await aiormq.connect(url)
        channel = await connection.channel()
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
    queue = driver._topology.work_queue("hostile")
    exchange = f"asynctasq-test-forger-{uuid.uuid4().hex[:8]}"
    forger = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FORGER, rabbitmq_url, queue, exchange, stderr=subprocess.PIPE
    )
    _, err = await forger.communicate()
    assert forger.returncode == 0, err.decode()
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
