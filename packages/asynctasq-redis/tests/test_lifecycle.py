"""Redis specifics of the lifecycle capabilities (status records, logs, worker records)
beyond the conformance suite: key layout, sweeping, trimming, and blocked log readers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from asynctasq.drivers.base import (
    MAX_WORKER_RECORDS,
    EventLog,
    OutgoingMessage,
    StatusStore,
    StatusWrite,
    WorkerRegistry,
)
from asynctasq_redis import RedisDriver
from asynctasq_redis._keys import log_tag, status_tag, workers_tag
from asynctasq_redis._status import WRITES_PER_CALL


def write(task_id: str, queue: str = "q", state: str = "queued", ttl: float = 60) -> StatusWrite:
    return StatusWrite(task_id, queue, state, f"{task_id}:{state}".encode(), ttl)


@pytest.fixture
async def admin(redis_url: str, prefix: str) -> AsyncIterator[Redis]:
    """A plain client on the test server; deletes the test's keys afterwards."""
    client = Redis.from_url(redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{{{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def make_driver(
    redis_url: str, prefix: str, admin: Redis
) -> AsyncIterator[Callable[..., RedisDriver]]:
    """Makes drivers with the test's prefix and the settings given; closes them after."""
    made: list[RedisDriver] = []

    def make(**settings: Any) -> RedisDriver:
        made.append(RedisDriver(url=redis_url, prefix=prefix, **settings))
        return made[-1]

    yield make
    for driver in made:
        await driver.close()


async def blocked_in_xread(admin: Redis, name: str) -> int:
    """Connections of client `name` blocked in XREAD now (flag ``b``; ``cmd`` is the last
    command a connection ran, blocked or not)."""
    return sum(
        1
        for c in await admin.client_list()
        if c.get("name") == name and c["cmd"] == "xread" and "b" in c["flags"]
    )


def test_the_driver_has_every_lifecycle_capability() -> None:
    driver = RedisDriver()
    assert isinstance(driver, StatusStore)
    assert isinstance(driver, EventLog)
    assert isinstance(driver, WorkerRegistry)


async def test_all_lifecycle_keys_are_under_the_prefix_one_slot_per_capability(
    redis_driver: RedisDriver,
) -> None:
    d = redis_driver
    await d.write_statuses([write(str(uuid.uuid4())), write(str(uuid.uuid4()), "other")])
    await d.append_log("events", [b"e"], 60)
    await d.append_log("cancels", [b"c"], 60)
    await d.heartbeat_worker("w1", b"w1", 60)
    keys = [k.decode() async for k in d.client.scan_iter(match=f"*{d.prefix}*")]
    assert keys and all(k.startswith(f"{{{d.prefix}/") for k in keys)
    slots: dict[str, set[int]] = {}
    for tag in (status_tag(d.prefix), log_tag(d.prefix, "events"), workers_tag(d.prefix)):
        slots[tag] = {key_slot(k.encode()) for k in keys if k.startswith(tag)}
        assert len(slots[tag]) == 1, tag


# -- status records ----------------------------------------------------------------------
async def test_a_state_change_moves_the_record_between_indexes(redis_driver: RedisDriver) -> None:
    d, task_id = redis_driver, str(uuid.uuid4())
    tag = status_tag(d.prefix)
    for state in ("queued", "running", "succeeded"):
        await d.write_statuses([write(task_id, state=state)])
    assert await d.client.exists(f"{tag}:by:queued:q", f"{tag}:by:running:q") == 0
    assert await d.client.zcard(f"{tag}:by:succeeded:q") == 1
    assert await d.list_statuses(state="running") == []
    assert await d.list_statuses(state="succeeded") == [f"{task_id}:succeeded".encode()]


async def test_listing_merges_queues_and_states_newest_first(redis_driver: RedisDriver) -> None:
    d = redis_driver
    written = []
    for n in range(12):  # over 3 queues and 2 states, one call each: the order is the test
        w = write(f"t{n}", queue=f"q{n % 3}", state=("running", "queued")[n % 2])
        await d.write_statuses([w])
        written.append(w.record)
    newest = written[::-1]
    assert await d.list_statuses(limit=100) == newest
    assert await d.list_statuses(limit=5) == newest[:5]
    assert await d.list_statuses(state="running") == [r for r in newest if b":running" in r]
    assert await d.list_statuses(queue="q1") == [newest[i] for i in (1, 4, 7, 10)]
    assert await d.list_statuses(queue="q1", state="queued") == [newest[i] for i in (4, 10)]
    assert await d.list_statuses(queue="nowhere") == []
    assert await d.list_statuses(limit=0) == []


async def test_a_big_batch_keeps_its_order_across_script_calls(redis_driver: RedisDriver) -> None:
    d, task_id = redis_driver, str(uuid.uuid4())
    filler = [write(str(uuid.uuid4())) for _ in range(WRITES_PER_CALL)]
    await d.write_statuses([write(task_id, state="running"), *filler, write(task_id, "q", "x")])
    assert await d.read_status(task_id) == f"{task_id}:x".encode()
    assert len(await d.list_statuses(limit=5000)) == WRITES_PER_CALL + 1


async def test_expired_records_leave_no_index_entries_behind(redis_driver: RedisDriver) -> None:
    d = redis_driver
    tag = status_tag(d.prefix)
    await d.write_statuses([write(str(uuid.uuid4()), f"q{n}", ttl=0.3) for n in range(50)])
    await asyncio.sleep(0.5)
    await d.write_statuses([write("survivor")])  # a write sweeps more than it adds
    assert await d.client.hlen(f"{tag}:meta") == 1
    assert await d.client.zcard(f"{tag}:expiry") == 1
    assert await d.list_statuses() == [b"survivor:queued"]
    # listing dropped the kinds whose index emptied
    assert await d.client.smembers(f"{tag}:kinds") == {b"queued:q"}


async def test_a_state_with_a_colon_is_refused(redis_driver: RedisDriver) -> None:
    with pytest.raises(ValueError, match="cannot contain ':'"):
        await redis_driver.write_statuses([write("t", state="a:b")])


# -- logs --------------------------------------------------------------------------------
async def test_the_tail_of_an_empty_log_is_the_start(redis_driver: RedisDriver) -> None:
    d = redis_driver
    assert await d.log_tail("nothing") == "0-0"
    await d.append_log("log", [b"a"], 60)
    tail = await d.log_tail("log")
    assert tail != "0-0" and tail != "$"
    assert await d.read_log("log", tail, wait=0) == ([], tail)


async def test_appending_trims_expired_entries_but_not_longer_kept_ones(
    redis_driver: RedisDriver,
) -> None:
    d = redis_driver
    stream = f"{log_tag(d.prefix, 'log')}:entries"
    await d.append_log("log", [b"week"], 7 * 86400)
    await d.append_log("log", [f"{n}".encode() for n in range(500)], 0.2)
    await asyncio.sleep(0.4)
    await d.append_log("log", [b"later"], 60)
    # the week-long entry holds the trim point back; readers still pass over expired ones
    entries, cursor = await d.read_log("log", None, wait=0)
    assert entries == [b"week", b"later"]
    assert await d.read_log("log", cursor, wait=0) == ([], cursor)
    # once only short retentions are appended for a log, old entries are trimmed away
    other = f"{log_tag(d.prefix, 'short')}:entries"
    await d.append_log("short", [f"{n}".encode() for n in range(500)], 0.2)
    await asyncio.sleep(0.4)
    await d.append_log("short", [b"later"], 0.2)
    assert await d.client.xlen(other) < 150  # whole stream nodes (100 entries) go at once
    assert await d.client.xlen(stream) == 502


async def test_a_reader_passes_over_expired_entries_and_moves_its_cursor(
    redis_driver: RedisDriver,
) -> None:
    d = redis_driver
    await d.append_log("log", [b"a", b"b"], 0.2)
    await asyncio.sleep(0.4)
    entries, cursor = await d.read_log("log", None, wait=0)
    assert entries == [] and cursor != "0-0"
    await d.append_log("log", [b"c"], 60)
    assert (await d.read_log("log", cursor, wait=0))[0] == [b"c"]


async def test_a_long_run_of_expired_entries_is_passed_over_in_steps(
    redis_driver: RedisDriver,
) -> None:
    d = redis_driver
    await d.append_log("log", [b"week"], 7 * 86400)  # holds trimming back
    await d.append_log("log", [b"%d" % n for n in range(3000)], 0.2)
    await asyncio.sleep(0.4)
    await d.append_log("log", [b"later"], 60)
    entries, cursor = await d.read_log("log", None, wait=0, limit=10)
    assert entries == [b"week"]
    # one call passes over a bounded number; a waiting reader goes on without waiting
    assert (await d.read_log("log", cursor, wait=0, limit=10))[0] == []
    started = time.monotonic()
    assert (await d.read_log("log", cursor, wait=5, limit=10))[0] == [b"later"]
    assert time.monotonic() - started < 1


async def test_readers_at_one_cursor_share_one_blocked_connection(
    make_driver: Callable[..., RedisDriver], admin: Redis
) -> None:
    name = f"reader-{uuid.uuid4().hex[:8]}"
    driver = make_driver(client_name=name, max_connections=3)
    tail = await driver.log_tail("events")
    readers = [
        asyncio.create_task(driver.read_log("events", tail, wait=5, limit=n)) for n in range(1, 21)
    ]
    await asyncio.sleep(0.3)
    assert await blocked_in_xread(admin, name) == 1
    # the other connections stay free for everything else
    await driver.enqueue(OutgoingMessage(str(uuid.uuid4()), "q", b"{}"))
    assert len(await driver.dequeue(["q"], limit=1, wait=0)) == 1
    started = time.monotonic()
    await driver.append_log("events", [b"x", b"y"], 60)
    results = await asyncio.wait_for(asyncio.gather(*readers), 5)
    assert time.monotonic() - started < 0.5
    # each took at most its own limit of what the shared read brought
    assert [entries for entries, _ in results] == [[b"x"]] + [[b"x", b"y"]] * 19
    assert await driver.read_log("events", results[0][1], wait=0) == ([b"y"], results[1][1])


async def test_a_cancelled_reader_leaves_the_pool_usable(
    make_driver: Callable[..., RedisDriver], admin: Redis
) -> None:
    name = f"reader-{uuid.uuid4().hex[:8]}"
    driver = make_driver(client_name=name, max_connections=2)
    tail = await driver.log_tail("log")
    for _ in range(5):  # cancelled again and again: still one blocked connection
        reader = asyncio.create_task(driver.read_log("log", tail, wait=5))
        await asyncio.sleep(0.05)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    assert await blocked_in_xread(admin, name) == 1
    # every reply on the other connection belongs to its own command
    for n in range(50):
        await driver.write_statuses([write(f"t{n}")])
        assert await driver.read_status(f"t{n}") == f"t{n}:queued".encode()
    # a new reader at that cursor takes over the standing read, and is woken
    reader = asyncio.create_task(driver.read_log("log", tail, wait=5))
    await asyncio.sleep(0.05)
    await driver.append_log("log", [b"hello"], 60)
    assert (await asyncio.wait_for(reader, 2))[0] == [b"hello"]
    assert await blocked_in_xread(admin, name) == 0


async def test_close_ends_a_blocked_read(
    make_driver: Callable[..., RedisDriver], admin: Redis
) -> None:
    name = f"reader-{uuid.uuid4().hex[:8]}"
    driver = make_driver(client_name=name)
    tail = await driver.log_tail("log")
    reader = asyncio.create_task(driver.read_log("log", tail, wait=10))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await driver.close()
    assert await asyncio.wait_for(reader, 2) == ([], tail)
    assert time.monotonic() - started < 1
    await asyncio.sleep(0.1)
    assert await blocked_in_xread(admin, name) == 0
    # and the driver works again after close
    await driver.append_log("log", [b"again"], 60)
    assert (await driver.read_log("log", tail, wait=1))[0] == [b"again"]


async def test_a_wait_longer_than_one_block_still_wakes_on_an_append(
    make_driver: Callable[..., RedisDriver],
) -> None:
    # socket_timeout 1.6 s: each XREAD blocks 0.6 s, so this wait spans several of them
    driver = make_driver(socket_timeout=1.6)
    tail = await driver.log_tail("log")
    reader = asyncio.create_task(driver.read_log("log", tail, wait=5))
    await asyncio.sleep(1.5)
    assert not reader.done()
    await driver.append_log("log", [b"late"], 60)
    assert (await asyncio.wait_for(reader, 2))[0] == [b"late"]


# -- workers -----------------------------------------------------------------------------
async def test_expired_workers_are_swept(redis_driver: RedisDriver) -> None:
    d = redis_driver
    tag = workers_tag(d.prefix)
    for n in range(10):
        await d.heartbeat_worker(f"w{n}", f"w{n}".encode(), 0.2)
    await asyncio.sleep(0.4)
    await d.heartbeat_worker("alive", b"alive", 60)
    assert await d.client.hlen(f"{tag}:info") == 1
    assert await d.list_workers() == [b"alive"]
    await d.remove_worker("alive")
    await d.remove_worker("never-there")
    assert await d.list_workers() == []


async def test_a_listing_reads_a_bounded_number_of_forged_records(
    redis_driver: RedisDriver,
) -> None:
    """Anyone who can write to Redis can add worker records: 200,000 of them blocked Redis
    for half a second on every listing. The script now stops at `MAX_WORKER_RECORDS`."""
    d = redis_driver
    tag = workers_tag(d.prefix)
    forged = MAX_WORKER_RECORDS + 500
    far = (time.time() + 3600) * 1000
    pipe = d.client.pipeline(transaction=False)
    for start in range(0, forged, 5000):
        ids = [f"forged{n}" for n in range(start, min(start + 5000, forged))]
        pipe.hset(f"{tag}:info", mapping=dict.fromkeys(ids, b"x"))
        pipe.zadd(f"{tag}:alive", dict.fromkeys(ids, far))
    await pipe.execute()
    assert len(await d.list_workers()) == MAX_WORKER_RECORDS


# -- cluster -----------------------------------------------------------------------------
async def test_lifecycle_on_a_cluster_spreads_capabilities_over_slots(
    cluster_driver: RedisDriver,
) -> None:
    d = cluster_driver
    await d.write_statuses([write(str(uuid.uuid4()), f"q{n}") for n in range(20)])
    await d.append_log("events", [b"e"], 60)
    await d.heartbeat_worker("w", b"w", 60)
    keys: list[bytes] = []
    for node in d.client.get_primaries():
        keys += await d.client.keys(f"{{{d.prefix}/*", target_nodes=node)
    for tag in (status_tag(d.prefix), log_tag(d.prefix, "events"), workers_tag(d.prefix)):
        assert len({key_slot(k) for k in keys if k.startswith(tag.encode())}) == 1
    assert len(await d.list_statuses(limit=100)) == 20
    tail = await d.log_tail("events")
    reader = asyncio.create_task(d.read_log("events", tail, wait=5))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await d.append_log("events", [b"pushed"], 60)
    assert (await asyncio.wait_for(reader, 2))[0] == [b"pushed"]
    assert time.monotonic() - started < 0.5
