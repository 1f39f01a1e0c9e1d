"""Claims on Redis beyond the conformance suite: key layout, server-side expiry, and values
written behind the driver's back."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.worker import Worker
from asynctasq_redis import RedisDriver


async def test_a_claim_is_one_key_under_the_prefix_expiring_on_the_server(
    redis_driver: RedisDriver,
) -> None:
    driver = redis_driver
    assert await driver.claim("schedule:nightly:1700000000", "w1", 30) is None
    key = f"{driver.prefix}:claim:schedule:nightly:1700000000"
    assert await driver.client.get(key) == b"w1"
    assert 29_000 < await driver.client.pttl(key) <= 30_000
    assert await driver.claim("schedule:nightly:1700000000", "w1", 90, replace="w1") is None
    assert 89_000 < await driver.client.pttl(key) <= 90_000  # renewal moved the expiry
    assert await driver.release_claim("schedule:nightly:1700000000", "w1") is True
    assert await driver.client.exists(key) == 0  # released claims leave nothing behind


async def test_a_sub_millisecond_ttl_is_one_millisecond(redis_driver: RedisDriver) -> None:
    assert await redis_driver.claim("tiny", "w1", 0.0001) is None
    for _ in range(100):  # expires on the server: no clock here to wait on
        if await redis_driver.read_claim("tiny") is None:
            break
        await asyncio.sleep(0.01)
    assert await redis_driver.read_claim("tiny") is None


@pytest.mark.parametrize(
    ("written", "ttl_ms"),
    [
        (b"\xff\xfe not utf-8", 60_000),
        (b"nul\x00inside", 60_000),
        (b"x" * (1024 * 1024), 60_000),
        (b"x" * 300, 60_000),  # more characters than a holder, fewer bytes than 4 x 256
        ("\u00e9".encode() * 257, 60_000),
        (b"a/holder", None),  # no expiry: a claim never outlives its ttl
        (b"a/holder", (200 * 366 * 86400 * 1000)),  # past the longest ttl
    ],
)
async def test_a_value_no_driver_writes_is_no_claim(
    redis_driver: RedisDriver, written: bytes, ttl_ms: int | None
) -> None:
    """Whoever can write to Redis could otherwise hold a rate limit, a concurrency slot or a
    schedule tick for ever with a value that compare-and-replace can never name."""
    driver = redis_driver
    key = f"{driver.prefix}:claim:forged"
    await driver.client.set(key, written, px=ttl_ms)
    try:
        assert await driver.read_claim("forged") is None
        assert await driver.claim("forged", "w1", 60) is None
        assert await driver.read_claim("forged") == "w1"
        assert 59_000 < await driver.client.pttl(key) <= 60_000
    finally:
        await driver.client.delete(key)


async def test_a_well_formed_value_with_a_ttl_is_a_claim(redis_driver: RedisDriver) -> None:
    driver = redis_driver
    key = f"{driver.prefix}:claim:held"
    await driver.client.set(key, "someone/else", px=60_000)
    longest = "\U0001f600" * 256  # the longest holder, in bytes too
    assert await driver.claim("longest", longest, 60) is None
    assert await driver.read_claim("longest") == longest
    assert await driver.read_claim("held") == "someone/else"
    assert await driver.claim("held", "w1", 60) == "someone/else"
    assert await driver.release_claim("held", "w1") is False
    assert await driver.client.get(key) == b"someone/else"  # left alone


_ran: list[str] = []


@task(queue="forged-limits", rate_limit="100/s")
async def rated() -> None:
    _ran.append("rated")


@task(queue="forged-limits", concurrency_limit=1)
async def limited() -> None:
    _ran.append("limited")


async def test_a_forged_limit_claim_does_not_hold_a_limited_task(
    redis_driver: RedisDriver,
) -> None:
    """A rate key holding 300 characters and a concurrency slot held with no expiry: the
    first could never be replaced by name, the second never freed, and the tasks waited
    for ever, silently."""
    d = redis_driver
    _ran.clear()
    messages = [prepare(rated()), prepare(limited())]
    rate_key, slot_key = (orjson.loads(m.payload)["l"]["k"] for m in messages)
    await d.client.set(f"{d.prefix}:claim:{rate_key}:r", "x" * 300)
    await d.client.set(f"{d.prefix}:claim:{slot_key}:c0", "someone/forever")
    await d.enqueue_many(messages)
    worker = Worker(
        driver=d, queues=["forged-limits"], burst=True, poll_wait=0.1, install_signal_handlers=False
    )
    await asyncio.wait_for(worker.run(), 30)
    assert sorted(_ran) == ["limited", "rated"]
