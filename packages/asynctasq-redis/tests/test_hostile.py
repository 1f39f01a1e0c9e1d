"""Hostile and fuzzed messages thrown at a real worker process on Redis: it stays up."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from asynctasq.testing.hostile import (
    HostileProject,
    check_worker_survives,
    fuzz_messages,
    hostile_messages,
)
from asynctasq_redis import RedisDriver

pytestmark = pytest.mark.slow


def project(tmp_path: Path, redis_url: str, prefix: str) -> HostileProject:
    return HostileProject(
        tmp_path / "app", {"driver": "redis", "redis": {"url": redis_url, "prefix": prefix}}
    )


async def test_hostile_messages_are_dead_lettered_and_the_batch_runs(
    redis_driver: RedisDriver, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    queue = f"hostile-{uuid.uuid4().hex[:8]}"
    await check_worker_survives(
        redis_driver, project(tmp_path, redis_url, prefix), queue, hostile_messages()
    )


@pytest.mark.parametrize("seed", [1, 2])
async def test_fuzzed_messages_never_stop_the_worker(
    redis_driver: RedisDriver, redis_url: str, prefix: str, tmp_path: Path, seed: int
) -> None:
    queue = f"fuzz-{uuid.uuid4().hex[:8]}"
    await check_worker_survives(
        redis_driver, project(tmp_path, redis_url, prefix), queue, fuzz_messages(seed, 150)
    )


def test_key_cache_keeps_a_bounded_number_of_queue_names() -> None:
    # Operator views build keys for every registry name, which anyone who can write to
    # Redis can fill with millions: past the bound they are built per call, not kept.
    from asynctasq_redis._keys import CACHED_QUEUES, KeyCache, QueueKeys

    cache = KeyCache("p")
    names = [f"forged-{n}" for n in range(CACHED_QUEUES + 500)]
    built = [cache[name] for name in names]
    assert built == [QueueKeys.build("p", name) for name in names]
    assert cache[names[0]] is built[0]  # the first ones are kept
    assert cache[names[-1]] is not built[-1]  # later ones are not
