"""Connections lost under a running driver (server restart, admin kill) come back by
themselves: the pool replaces dead connections and the listener LISTENs again.

The server is not restarted (other people use it): the driver's own backends are ended with
``pg_terminate_backend``, which is what a restart does to each connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.worker import Worker
from asynctasq_postgres import PostgresDriver

Factory = Callable[..., PostgresDriver]
SECRET = "s3cr%40t%2Fpw"  # percent-encoded "s3cr@t/pw"


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0] or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def msg() -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), "q", b"{}")


async def terminate(admin: asyncpg.Connection[asyncpg.Record], application_name: str) -> int:
    killed: int = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name IN ($1, $1 || '-listen') AND pid <> pg_backend_pid()",
        application_name,
    )
    return killed


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_pool_and_listener_recover_after_their_backends_die(
    make_driver: Factory,
    admin: asyncpg.Connection[asyncpg.Record],
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    consumer = make_driver(dsn=with_password(dsn, SECRET), poll_interval=60)
    await consumer.init_schema()
    producer = make_driver(schema=consumer.table_names.schema)
    assert await consumer.dequeue(["q"], limit=1, wait=0.05) == []  # pool + LISTEN are up
    listener = consumer._listener
    assert listener is not None
    assert listener.connected

    waiting = asyncio.create_task(consumer.dequeue(["q"], limit=1, wait=20.0))
    await asyncio.sleep(0.1)
    reconnects = listener.reconnects
    assert await terminate(admin, consumer._application_name) >= 2
    await eventually(lambda: listener.reconnects > reconnects and listener.connected)

    # Woken through the new LISTEN connection: the 60 s poll cannot explain it.
    await asyncio.sleep(0.1)
    message = msg()
    started = time.monotonic()
    await producer.enqueue(message)
    got = await asyncio.wait_for(waiting, 15.0)
    assert [d.task_id for d in got] == [message.task_id]
    assert time.monotonic() - started < 10.0

    # Pooled connections killed while idle are replaced on the next acquire.
    await terminate(admin, consumer._application_name)
    await asyncio.sleep(0.1)
    await consumer.ack(got)
    assert await consumer.stats(["q"])

    assert SECRET not in caplog.text
    assert "s3cr@t/pw" not in caplog.text


async def test_an_operation_cut_mid_query_raises_then_the_next_one_works(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    driver = make_driver(min_pool_size=1, max_pool_size=1)
    await driver.init_schema()
    await driver.enqueue(msg())
    pool = driver._pool
    assert pool is not None

    async def hold_a_query() -> None:
        await pool.execute("SELECT pg_sleep(10)")

    blocked = asyncio.create_task(hold_a_query())
    await asyncio.sleep(0.3)
    await terminate(admin, driver._application_name)
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await blocked
    # The worker's loop would back off and try again: the next call gets a new connection.
    got = await driver.dequeue(["q"], limit=1, wait=0)
    assert len(got) == 1


async def test_connection_errors_do_not_show_the_password() -> None:
    driver = PostgresDriver(
        f"postgresql://app:{SECRET}@127.0.0.1:1/none", min_pool_size=1, connect_timeout=2
    )
    with pytest.raises(OSError, match=r"127\.0\.0\.1") as raised:
        await driver.connect()
    for text in (str(raised.value), repr(raised.value), repr(driver)):
        assert SECRET not in text
        assert "s3cr@t/pw" not in text


async def test_percent_encoded_password_and_sslmode_are_parsed_by_asyncpg(
    make_driver: Factory, dsn: str
) -> None:
    url = with_password(dsn, SECRET)
    url += ("&" if "?" in url else "?") + "sslmode=disable"
    driver = make_driver(dsn=url)
    await driver.init_schema()
    await driver.enqueue(msg())
    assert len(await driver.dequeue(["q"], limit=1, wait=0)) == 1
    assert SECRET not in repr(driver)


_completed: set[int] = set()


@task(queue="recover", max_attempts=10, retry_delay=0.1, visibility_timeout=2.0)
async def note_completion(n: int) -> None:
    """Remember that task `n` ran to the end."""
    _completed.add(n)


async def test_a_running_worker_rides_out_killed_connections(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    driver = make_driver(poll_interval=1.0)
    await driver.init_schema()
    worker = Worker(
        driver=driver,
        queues=["recover"],
        concurrency=4,
        poll_wait=1.0,
        install_signal_handlers=False,
    )
    running = asyncio.create_task(worker.run())
    try:
        await driver.enqueue_many([prepare(note_completion(n)) for n in range(20)])
        for _ in range(3):  # three "restarts" while it works
            await asyncio.sleep(0.3)
            await terminate(admin, driver._application_name)
        # A statement sent on a connection the server is closing at that very moment fails
        # (the worker retries; a producer would see the error): let the pool notice first.
        await asyncio.sleep(0.1)
        await driver.enqueue_many([prepare(note_completion(n)) for n in range(20, 40)])
        await eventually(lambda: len(_completed) == 40, within=20.0)
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 15)
    assert _completed == set(range(40))
    [stats] = await driver.stats(["recover"])
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)
