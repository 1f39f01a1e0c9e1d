"""A kit for the test every driver owes: hostile messages cannot stop a real worker.

Anyone who can write to the broker can put any bytes in a queue. This module holds the
messages such a writer would try, and a real worker process to throw them at:

* `HostileProject`: a folder with a task module (`ok`, recording each run in a file), a
  module that raises ``SystemExit`` when imported, and a worker script that builds core's
  `Worker` from a configuration dict; `start_worker` runs it as a subprocess.
* `hostile_messages`: named references (``venv.__main__``, ``this``, ``os:system``, ...)
  through the task name and through an Enum argument, malformed envelopes, huge strings,
  each with the reason its dead letter must give.
* `fuzz_messages`: random and mutated messages from a seed (random bytes, truncated and
  corrupted JSON, wrong shapes, hostile references, huge strings).
* `check_worker_survives`: enqueue a batch mixing them with good tasks, run the worker, and
  check that it stays up, runs every good task once, dead-letters every hostile one with its
  reason, and leaves nothing queued.

Example (a driver package's test)::

    async def test_hostile_messages(driver, tmp_path):
        project = HostileProject(tmp_path, {"driver": "redis", "redis": {...}})
        await check_worker_survives(driver, project, queue, hostile_messages(project))
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from asynctasq.drivers.base import Driver, OutgoingMessage

TASKS_MODULE = "hostile_app_tasks"
OK_TASK = f"{TASKS_MODULE}:ok"
EXIT_MODULE = "exits_when_imported"

_TASKS = textwrap.dedent(
    """
    import enum
    import os

    from asynctasq import task

    DONE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "done.txt")


    class Colour(enum.IntEnum):
        RED = 1


    @task(max_attempts=1)
    async def ok(n, *rest):
        with open(DONE, "a") as f:
            # One line per run, whatever a fuzzed message passed as `n`.
            f.write(repr(n)[:50].replace("\\n", " ") + "\\n")
    """
)

_EXITS = "raise SystemExit(3)\n"

_WORKER = textwrap.dedent(
    """
    import asyncio
    import json
    import logging
    import sys

    from asynctasq import init
    from asynctasq.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config, queue = json.loads(sys.argv[1]), sys.argv[2]
    init(config)
    worker = Worker(queues=[queue], concurrency=64, poll_wait=0.2, shutdown_timeout=5)
    print("worker ready", flush=True)
    asyncio.run(worker.run())
    """
)

ZEN_MARKER = "Beautiful is better than ugly"
"""What importing ``this`` prints: it must never appear in a worker's output."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message to enqueue, and what must become of it.

    Attributes:
        label: A name for reports.
        payload: The bytes.
        reason: A text the dead letter's message must contain; None when the message is
            good (it must run) or when any dead letter will do (fuzzed messages).
        good: Whether it is a good task that must run exactly once.
        may_run: A fuzzed message that may happen to be valid: it either runs or is
            dead-lettered.
    """

    label: str
    payload: bytes
    reason: str | None = None
    good: bool = False
    may_run: bool = False


def envelope(task: str, args: Sequence[Any] = (), *, attempts: int = 1, **extra: Any) -> bytes:
    """A version-1 envelope for `task` with `args` (retries without delay)."""
    doc = {
        "v": 1,
        "id": str(uuid.uuid4()),
        "task": task,
        "at": time.time(),
        "o": [attempts, 0, "fixed", 0, False, None, 30],
        "args": list(args),
        "kwargs": {},
        **extra,
    }
    return orjson.dumps(doc)


def enum_arg(ref: str) -> dict[str, Any]:
    """An argument that decodes as a member of the Enum class `ref` names."""
    return {"__aq__": "enum", "v": [ref, 1]}


class HostileProject:
    """A worker's folder: task modules and the worker script, under `root`.

    Args:
        root: An empty folder (the worker's working directory and its only allowed root).
        config: The configuration the worker is started with (``init(config)``).
    """

    def __init__(self, root: Path, config: Mapping[str, Any]) -> None:
        self.root = root
        self.config = dict(config)
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{TASKS_MODULE}.py").write_text(_TASKS)
        (root / f"{EXIT_MODULE}.py").write_text(_EXITS)
        (root / "hostile_worker.py").write_text(_WORKER)
        self.log = root / "worker.log"

    def done(self) -> list[int]:
        """The numbers the good `ok` runs recorded (1000 and up), in order."""
        path = self.root / "done.txt"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [int(line) for line in lines if line.isdigit() and int(line) >= 1000]

    def output(self) -> str:
        """What the worker printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start_worker(self, queue: str) -> subprocess.Popen[bytes]:
        """Start the worker on `queue`, in `root`, with PYTHONPATH cleared."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
        env.pop("PYTHONPATH", None)
        with open(self.log, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "hostile_worker.py", json.dumps(self.config), queue],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )


def good_messages(start: int, count: int) -> list[Message]:
    """`count` runs of the `ok` task, numbered from `start`."""
    return [
        Message(f"ok {n}", envelope(OK_TASK, [n]), good=True) for n in range(start, start + count)
    ]


def hostile_messages() -> list[Message]:
    """Every hostile reference and malformed shape the worker must dead-letter."""
    private = "private or __main__"
    stdlib = "standard-library"
    by_name = [
        ("venv.__main__:x", private),
        ("unittest.__main__:x", private),
        ("this:x", stdlib),
        ("antigravity:x", stdlib),
        ("os:system", "is not a task"),
        (f"{TASKS_MODULE}:__class__", "dunder"),
        (f"{TASKS_MODULE}:Colour", "is not a task"),
        ("a" * 100_000 + ":x", "too long"),
    ]
    out = [Message(f"task {ref[:40]}", envelope(ref), reason) for ref, reason in by_name]
    by_enum = [
        ("venv.__main__:X", private),
        ("unittest.__main__:X", private),
        ("this:X", stdlib),
        (f"{EXIT_MODULE}:X", "SystemExit"),
        ("os:system", "not an Enum"),
    ]
    out += [
        Message(f"enum {ref}", envelope(OK_TASK, [0, enum_arg(ref)]), reason)
        for ref, reason in by_enum
    ]
    # A task module raising SystemExit when imported is (maybe) code not deployed right: it
    # would be retried (at least 5 s later); with one attempt it is dead-lettered at once.
    out.append(
        Message(
            "module exits",
            envelope(f"{EXIT_MODULE}:t", attempts=1),
            f"importing task module '{EXIT_MODULE}' failed: SystemExit",
        )
    )
    malformed = [
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (envelope(OK_TASK, [1])[:-7], "not valid JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"v": 99}', "version"),
        (orjson.dumps({"v": 1, "task": OK_TASK, "o": "x", "args": [], "kwargs": {}}), "options"),
        (orjson.dumps({"v": 1, "task": ["x"], "o": []}), "names no task"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (envelope(OK_TASK, [{"__aq__": "nope", "v": 1}]), "nope"),
        (envelope(OK_TASK, [0, enum_arg("x" * 1_000_000)]), "enum"),
        (envelope(OK_TASK, [1], src="/etc/passwd"), "script location"),
        (envelope(OK_TASK, [1], o=[1, 0, "fixed", 0, False, None, 30, "x"]), "options"),
    ]
    out += [Message(f"malformed {i}", body, reason) for i, (body, reason) in enumerate(malformed)]
    return out


def fuzz_messages(seed: int, count: int) -> list[Message]:
    """`count` random or mutated messages; whatever each is, the worker must survive it."""
    rng = random.Random(seed)
    base = envelope(OK_TASK, [1, "text", [1, 2], {"k": None}])
    doc = orjson.loads(base)
    refs = ["venv.__main__:x", "this:x", "os:system", "sys:exit", f"{EXIT_MODULE}:x", "", ":"]
    out: list[Message] = []
    for i in range(count):
        kind = rng.randrange(8)
        if kind == 0:
            body = rng.randbytes(rng.randrange(0, 2000))
        elif kind == 1:
            body = base[: rng.randrange(len(base))]
        elif kind == 2:
            raw = bytearray(base)
            for _ in range(rng.randrange(1, 6)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            body = bytes(raw)
        elif kind == 3:
            broken = dict(doc)
            key = rng.choice(sorted(broken))
            broken[key] = rng.choice(
                [None, 0, -1, 1.5, "x", [], {}, [None] * 9, "é" * 50, True, 2**70]
            )
            body = json.dumps(broken).encode()  # the stdlib writes ints past 64 bits too
        elif kind == 4:
            body = envelope(rng.choice(refs))
        elif kind == 5:
            body = envelope(OK_TASK, [0, enum_arg(rng.choice(refs))])
        elif kind == 6:
            huge = "\u202e" * rng.randrange(1, 200_000)
            body = envelope(rng.choice([huge + ":x", OK_TASK]), [0, {"__aq__": huge, "v": 1}])
        else:
            tagged = {"__aq__": rng.choice(["enum", "dt", "set", "bytes", "dec", "x"]), "v": None}
            body = envelope(OK_TASK, [0, tagged])
        out.append(Message(f"fuzz {seed}/{i} kind {kind}", body, may_run=True))
    return out


async def check_worker_survives(
    driver: Driver,
    project: HostileProject,
    queue: str,
    hostile: Sequence[Message],
    *,
    good: int = 20,
    within: float = 90.0,
) -> None:
    """Throw `hostile` and `good` good tasks, in one batch, at a real worker on `queue`.

    Checks: the worker process stays up and stops cleanly on SIGTERM; every good task ran
    exactly once; every hostile message is dead-lettered (with its reason, where it names
    one) and none ran; nothing is left ready, delayed or in flight; importing ``this`` never
    printed anything.

    Raises:
        AssertionError: a check failed (with the worker's output).
    """
    goods = good_messages(1000, good)
    mixed = list(hostile) + goods
    random.Random(len(mixed)).shuffle(mixed)  # good tasks in the same fetches as bad ones
    ids = {str(uuid.uuid4()): m for m in mixed}
    for task_id, message in ids.items():
        await driver.enqueue(OutgoingMessage(task_id, queue, message.payload))
    hostile_ids = {task_id for task_id, m in ids.items() if not m.good}
    must_die = {task_id for task_id in hostile_ids if not ids[task_id].may_run}
    worker = project.start_worker(queue)
    try:
        deadline = time.monotonic() + within
        while True:
            letters = await driver.list_dead_letters(queue=queue, limit=len(ids) + 10)
            [stats] = await driver.stats([queue])
            settled = (stats.ready, stats.delayed, stats.in_flight) == (0, 0, 0)
            if len(project.done()) >= good and len(letters) >= len(must_die) and settled:
                break
            assert worker.poll() is None, f"the worker exited ({worker.returncode})\n" + tail(
                project
            )
            assert time.monotonic() < deadline, (
                f"{len(project.done())}/{good} good tasks ran, {len(letters)}/{len(must_die)} "
                f"messages were dead-lettered, queue {stats} in {within} s\n{tail(project)}"
            )
            await asyncio.sleep(0.2)
        assert worker.poll() is None, "the worker exited\n" + tail(project)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            # The worker's own deadline is 5 s; the rest is for a loaded machine.
            code = worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()  # reaped here, not reported later by another test
            raise AssertionError("the worker did not stop on SIGTERM\n" + tail(project)) from None
    assert code == 0, f"the worker exited with {code}\n{tail(project)}"
    assert sorted(project.done()) == list(range(1000, 1000 + good)), tail(project)
    by_id = {letter.task_id: letter for letter in letters}
    assert must_die <= set(by_id) <= hostile_ids, (
        f"dead letters {len(by_id)}, hostile {len(must_die)}; not dead-lettered: "
        f"{[ids[i].label for i in must_die - set(by_id)]}; good ones dead-lettered: "
        f"{[ids[i].label for i in set(by_id) - hostile_ids]}"
    )
    for task_id, letter in by_id.items():
        reason = ids[task_id].reason
        text = f"{letter.failure.exception_type}: {letter.failure.message}"
        assert len(text) < 200_000, f"{ids[task_id].label}: unbounded dead-letter text"
        if reason is not None:
            assert reason in text, f"{ids[task_id].label}: {reason!r} not in {text[:500]!r}"
    output = project.output()
    assert ZEN_MARKER not in output, "importing `this` ran"
    assert not (project.root / "worker").exists(), "importing venv.__main__ ran"


def tail(project: HostileProject, size: int = 4000) -> str:
    """The end of the worker's output, for assertion messages."""
    return project.output()[-size:]


__all__ = [
    "OK_TASK",
    "ZEN_MARKER",
    "HostileProject",
    "Message",
    "check_worker_survives",
    "enum_arg",
    "envelope",
    "fuzz_messages",
    "good_messages",
    "hostile_messages",
]
