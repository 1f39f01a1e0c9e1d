"""Clean broker state before and after every run, so each run starts from nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from scripts.bench.peers.contenders import (
    AMQP_URL,
    PG_DATABASE,
    PG_SERVER,
    RABBIT_EXCHANGE,
    RABBIT_PREFIX,
    REDIS_URL,
    Contender,
)


def reset(contender: Contender) -> None:
    """Remove everything a run of `contender` may have left on its broker."""
    if contender.broker == "redis":
        import redis

        with redis.Redis.from_url(REDIS_URL) as r:
            r.flushdb()
    elif contender.broker == "postgres":
        asyncio.run(_recreate_database())
    elif contender.broker == "rabbitmq":
        asyncio.run(_clean_rabbitmq(contender))
    elif contender.broker == "sqlite":
        path = Path(contender.env["ASYNCTASQ_SQLITE_PATH"])
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")


async def _recreate_database() -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    finally:
        await conn.close()


async def _clean_rabbitmq(contender: Contender) -> None:
    import aio_pika

    if contender.ours:
        from asynctasq_rabbitmq import RabbitMQDriver

        driver = RabbitMQDriver(
            url=AMQP_URL, exchange_name=RABBIT_EXCHANGE, queue_prefix=RABBIT_PREFIX
        )
        try:
            await driver.delete_topology()
        finally:
            await driver.close()
        return
    connection = await aio_pika.connect(AMQP_URL)
    try:
        for name in (contender.queue, f"{contender.queue}.DQ", f"{contender.queue}.XQ"):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        channel = await connection.channel()
        with contextlib.suppress(Exception):
            await channel.exchange_delete(contender.queue)
    finally:
        await connection.close()


def drop_all() -> None:
    """After the whole run: the peers' database and Redis db go away."""
    import redis

    with redis.Redis.from_url(REDIS_URL) as r:
        r.flushdb()
    asyncio.run(_drop_database())


async def _drop_database() -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()
