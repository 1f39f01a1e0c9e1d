"""Claims on Redis beyond the conformance suite: key layout, server-side expiry, and values
written behind the driver's back."""

from __future__ import annotations

import asyncio

import pytest

from asynctasq_redis import RedisDriver
from asynctasq_redis._claims import MAX_HOLDER_BYTES


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
    ("written", "read"),
    [
        (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
        (b"nul\x00inside", "nul\x00inside"),
        (b"x" * (1024 * 1024), "x" * MAX_HOLDER_BYTES),
    ],
)
async def test_a_forged_holder_is_read_bounded_and_refuses_the_claim(
    redis_driver: RedisDriver, written: bytes, read: str
) -> None:
    driver = redis_driver
    key = f"{driver.prefix}:claim:forged"
    await driver.client.set(key, written, px=60_000)
    try:
        assert await driver.read_claim("forged") == read
        assert await driver.claim("forged", "w1", 60) == read
        assert await driver.release_claim("forged", "w1") is False
        assert await driver.client.get(key) == written  # left alone
    finally:
        await driver.client.delete(key)
