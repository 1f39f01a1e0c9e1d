"""Key names: every key of one queue shares the hash tag ``{prefix:queue}``.

A shared hash tag puts all of a queue's keys in one Redis Cluster slot, so one Lua script can
change them atomically on a cluster too. Different queues usually live in different slots;
that is why the driver calls a script once per queue in cluster mode.

Layout for queue ``q`` under prefix ``p`` (``B = {p:q}``); an *entry* is
``<task id>\\n<visibility ms>\\n<deliveries>\\n<payload>`` (see `scripts`):

========================  ====================================================================
``B:ready``               list of entries, oldest first (FIFO), of priority 0
``B:ready:<p>``           list of entries of priority ``p`` (1-9), oldest first
``B:levels``              sorted set: the priorities ``p`` whose list may have entries
``B:delayed``             sorted set: entry -> due time (ms, Redis server clock)
``B:leased``              sorted set: lease field -> lease expiry (ms, Redis server clock)
``B:leases``              hash: lease field (``\\n<lease token>\\n<task id>``) ->
                          ``<lease token>\\n<entry>`` while leased
``B:seq``                 counter the lease tokens come from
``B:dead``                sorted set: task id -> dead-letter time (us)
``B:dead:<task id>``      hash: ``p`` payload, ``v`` visibility ms, ``a`` deliveries, ``e``
                          exception type, ``s`` message, ``t`` traceback, ``f`` failed-at us
``B:staged``              list: entries a blocked consumer's ``BLMOVE`` took from ready, for
                          the dequeue script that follows it (the front of ready)
``B:woken``               set while a wake-up sentinel (an empty entry) is in ready/staged
``{p}:queues``            set of queue names ever enqueued to (for ``queue_names``)
``p:result:<task id>``    list of one element, the kept outcome of a task (with a TTL)
``p:claim:<key>``         string: the holder of claim ``key`` (``PX``: expires with its ttl)
========================  ====================================================================

The lifecycle capabilities (task status, logs, worker records) use tags of their own,
``{p/...}``: a ``/`` where a queue's tag has ``:``, so no queue name can produce one. The
status records share one tag, as do the worker records, and each log has its own, so every
script stays atomic on a cluster while the groups spread over its nodes.

==============================  ==============================================================
``S = {p/status}``
``S:task:<task id>``            string: the status record (``SET PX``: expires with its TTL)
``S:by:<state>:<queue>``        sorted set: task id -> write sequence (the listing index)
``S:meta``                      hash: task id -> ``<state>:<queue>``, the index it is in
``S:expiry``                    sorted set: task id -> expiry (ms, server clock), for sweeping
``S:kinds``                     set of ``<state>:<queue>`` with an index
``S:seq``                       counter the write sequence comes from
``L = {p/log/<name>}``
``L:entries``                   stream: fields ``x`` (expiry, ms) and ``d`` (the entry)
``L:keep``                      string: the longest retention (ms) of an entry that may still
                                be live, expiring when no such entry can be; trimming keeps
                                every entry younger than it
``W = {p/workers}``
``W:info``                      hash: worker id -> its record
``W:alive``                     sorted set: worker id -> expiry (ms, server clock)
==============================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The key names of one queue.

    Attributes:
        queue: The queue name.
        tag: ``{prefix:queue}`` (bytes, as the scripts' only key): the scripts derive the
            other names from it.
        ready: List of ready entries.
        delayed: Sorted set of delayed entries by due time.
        leased: Sorted set of the leases' fields (``\\n<token>\\n<task id>``) by expiry.
        leases: Hash of the entries of leased messages, by their leases' fields.
        dead: Sorted set of dead-lettered task ids by failure time.
        staged: Entries moved off ready by a blocked consumer's ``BLMOVE``.
    """

    queue: str
    tag: bytes
    ready: str
    delayed: str
    leased: str
    leases: str
    dead: str
    staged: str

    @classmethod
    def build(cls, prefix: str, queue: str) -> QueueKeys:
        """Key names of `queue` under `prefix`."""
        base = f"{{{prefix}:{queue}}}"
        return cls(
            queue=queue,
            tag=base.encode(),
            ready=f"{base}:ready",
            delayed=f"{base}:delayed",
            leased=f"{base}:leased",
            leases=f"{base}:leases",
            dead=f"{base}:dead",
            staged=f"{base}:staged",
        )


def result_key(prefix: str, task_id: str) -> str:
    """The kept result of task `task_id`."""
    return f"{prefix}:result:{task_id}"  # no hash tag: results spread over the cluster


def claim_key(prefix: str, key: str) -> str:
    """The holder of claim `key` (no hash tag: one key per call, so claims spread over a
    cluster; a ``{...}`` inside `key` only picks another slot)."""
    return f"{prefix}:claim:{key}"


def registry_key(prefix: str) -> str:
    """The set of queue names known under `prefix`."""
    return f"{{{prefix}}}:queues"


def status_tag(prefix: str) -> str:
    """The hash tag of the task status records under `prefix` (see the layout above)."""
    return f"{{{prefix}/status}}"


def log_tag(prefix: str, log: str) -> str:
    """The hash tag of log `log` under `prefix`."""
    return f"{{{prefix}/log/{log}}}"


def workers_tag(prefix: str) -> str:
    """The hash tag of the worker records under `prefix`."""
    return f"{{{prefix}/workers}}"


CACHED_QUEUES = 1024
"""Queue names a `KeyCache` keeps keys for. The names come from callers and from the queue
registry, which anyone who can write to Redis can fill; past this, keys are built per call."""


class KeyCache:
    """Builds `QueueKeys` once per queue name (the hot paths look them up per call), for at
    most `CACHED_QUEUES` names."""

    __slots__ = ("_keys", "prefix", "registry")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.registry = registry_key(prefix)
        self._keys: dict[str, QueueKeys] = {}

    def __getitem__(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = QueueKeys.build(self.prefix, queue)
            if len(self._keys) < CACHED_QUEUES:
                self._keys[queue] = keys
        return keys
