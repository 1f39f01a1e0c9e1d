"""A broker outage seen from the client: a TCP proxy between driver and broker is cut."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from asynctasq.drivers.base import Delivery, OutgoingMessage
from asynctasq_rabbitmq import RabbitMQDriver


def _msg(queue: str) -> OutgoingMessage:
    task_id = str(uuid.uuid4())
    return OutgoingMessage(task_id, queue, task_id.encode())


async def test_worker_survives_an_outage_and_loses_nothing(
    make_driver: Callable[..., RabbitMQDriver], tcp_proxy: Any, rabbitmq_url: str
) -> None:
    driver = make_driver(url=tcp_proxy.url(rabbitmq_url), reconnect_interval=0.2)
    sent = [_msg("outage") for _ in range(10)]
    await driver.enqueue_many(sent)
    held = await driver.dequeue(["outage"], limit=4, wait=2.0)
    assert len(held) == 4
    await driver.ack(held[:1])
    await asyncio.sleep(0.1)

    await tcp_proxy.cut()
    await asyncio.sleep(0.2)  # the client notices the dead socket
    # An enqueue during the outage waits for the reconnect instead of failing.
    late = _msg("outage")
    enqueue = asyncio.create_task(driver.enqueue(late))
    assert await driver.dequeue(["outage"], limit=10, wait=0.5) == []
    await driver.ack(held[1:])  # the leases died with the connection: ignored, no error
    await asyncio.sleep(0.5)
    await tcp_proxy.start()
    await asyncio.wait_for(enqueue, 15)

    done: dict[str, Delivery] = {held[0].task_id: held[0]}
    deadline = time.monotonic() + 15
    while len(done) < 11 and time.monotonic() < deadline:
        got = await driver.dequeue(["outage"], limit=10, wait=1.0)
        await driver.ack(got)
        done.update((d.task_id, d) for d in got)
    assert set(done) == {m.task_id for m in [*sent, late]}
    # The three unacked when the connection broke came back, counted once.
    assert {done[d.task_id].attempts for d in held[1:]} == {1}
    assert await driver.dequeue(["outage"], limit=10, wait=0.5) == []

    # And the consumer is live again: an idle dequeue wakes for a new message.
    waiter = asyncio.create_task(driver.dequeue(["outage"], limit=1, wait=5.0))
    await asyncio.sleep(0.1)
    fresh = _msg("outage")
    started = time.monotonic()
    await driver.enqueue(fresh)
    assert [d.task_id for d in await waiter] == [fresh.task_id]
    assert time.monotonic() - started < 1.0
