"""Counting, purging and deleting queues: the slow paths, on short-lived private channels.

AMQP answers a (passive) queue declaration with the number of *ready* messages and of
consumers; that is all it tells without the management plugin. Delayed messages are the ready
messages of the delay-level queues, which exist from level 0 up without gaps.
"""

from __future__ import annotations

import contextlib

from aiormq.abc import AbstractConnection
from aiormq.exceptions import ChannelNotFoundEntity

from asynctasq.drivers.base import QueueStats
from asynctasq_rabbitmq import delays
from asynctasq_rabbitmq.publisher import CONNECTION_ERRORS
from asynctasq_rabbitmq.scan import passive_count
from asynctasq_rabbitmq.topology import Topology


async def delay_counts(connection: AbstractConnection, topology: Topology, queue: str) -> list[int]:
    """Ready counts of the delay levels of `queue`, level 0 first, up to the first missing."""
    counts: list[int] = []
    for level in range(delays.DELAY_LEVELS):
        found = await passive_count(connection, topology.delay_queue(queue, level))
        if found is None:
            break
        counts.append(found[0])
    return counts


async def queue_stats(
    connection: AbstractConnection, topology: Topology, queue: str, in_flight: int
) -> QueueStats:
    """Counts of `queue`; `in_flight` is supplied by the caller (AMQP cannot tell it)."""
    work = await passive_count(connection, topology.work_queue(queue))
    dead = await passive_count(connection, topology.dead_queue(queue))
    delayed = sum(await delay_counts(connection, topology, queue))
    return QueueStats(
        queue=queue,
        ready=work[0] if work else 0,
        delayed=delayed,
        in_flight=in_flight,
        dead=dead[0] if dead else 0,
        extra={"consumers": work[1] if work else 0, "in_flight_scope": "process"},
    )


async def purge_queue(connection: AbstractConnection, topology: Topology, queue: str) -> int:
    """Purge the work queue and the delay levels of `queue`; returns how many went."""
    levels = len(await delay_counts(connection, topology, queue))
    names = [topology.work_queue(queue)] + [
        topology.delay_queue(queue, level) for level in range(levels)
    ]
    removed = 0
    channel = await connection.channel(publisher_confirms=False)
    try:
        for name in names:
            try:
                purged = await channel.queue_purge(name)
            except ChannelNotFoundEntity:  # deleted meanwhile: the channel is gone too
                channel = await connection.channel(publisher_confirms=False)
                continue
            removed += int(purged.message_count or 0)
    finally:
        with contextlib.suppress(*CONNECTION_ERRORS):
            await channel.close()
    return removed


async def delete_namespace(
    connection: AbstractConnection, topology: Topology, queues: list[str]
) -> None:
    """Delete the queues of `queues`, the registry, the delay exchanges and the exchange."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        for queue in queues:
            await channel.queue_delete(topology.work_queue(queue))
            await channel.queue_delete(topology.dead_queue(queue))
            for level in range(delays.DELAY_LEVELS):
                await channel.queue_delete(topology.delay_queue(queue, level))
            topology.forget(queue)
        await channel.queue_delete(topology.registry_queue)
        for level in range(delays.DELAY_LEVELS):
            await channel.exchange_delete(topology.delay_exchange(level))
        await channel.exchange_delete(topology.exchange)
    finally:
        await channel.close()


__all__ = ["delay_counts", "delete_namespace", "purge_queue", "queue_stats"]
