"""Worker records (`WorkerRegistry`): a hash of records and a sorted set of their expiries.

Why this shape: a fleet has few workers, each renewing every few seconds, so two keys under
``{prefix/workers}`` hold them all (no key per worker to create and expire). Expiry is a
score on the Redis server's clock, so workers on skewed machines agree on who is alive;
every heartbeat and listing sweeps the expired records, so dead workers do not pile up.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asynctasq.drivers.base import MAX_WORKER_RECORDS
from asynctasq_redis._keys import workers_tag
from asynctasq_redis.scripts import SCRIPTS

_HEARTBEAT = SCRIPTS["HEARTBEAT_WORKER"]
_REMOVE = SCRIPTS["REMOVE_WORKER"]
_LIST = SCRIPTS["LIST_WORKERS"]


class WorkerRecords:
    """`WorkerRegistry` for `RedisDriver` (mixed in; uses its client and prefix)."""

    prefix: str
    _bound: Callable[[], Redis | RedisCluster]

    async def heartbeat_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        """Store (or renew) `worker_id`'s record for `ttl` seconds (one script call)."""
        tag = (workers_tag(self.prefix).encode(),)
        await _HEARTBEAT(self._bound(), tag, (worker_id, max(round(ttl * 1000), 1), info))

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        await _REMOVE(self._bound(), (workers_tag(self.prefix).encode(),), (worker_id,))

    async def list_workers(self) -> list[bytes]:
        """The records whose heartbeat has not expired."""
        tag = (workers_tag(self.prefix).encode(),)
        found: list[bytes] = await _LIST(self._bound(), tag, (MAX_WORKER_RECORDS,))
        return found
