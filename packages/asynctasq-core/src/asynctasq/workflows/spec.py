"""What a workflow stores: its plan (every step's message, ready to queue), the names of its
claims and results, and the header that marks a step's message.

The plan is one document in the results store under ``workflow:<id>``::

    {"v": 1, "k": "chain" | "group" | "chord", "ttl": <seconds>,
     "s": [{"t": "<task name>", "q": "<queue>", "d": <delay>, "vt": <visibility timeout>,
            "tr": <seconds a status record is kept, 0: untracked>,
            "pr": true,            # takes the previous result as its first argument
            "p": {...}},           # the step's envelope, as dispatch encoded it
           ...]}

Each queueing of a step gets a fresh token, a UUID, which is also its task id (see
`asynctasq.workflows.queueing`): two copies of one step never share an id (drivers keep a
message's lease by its id, and some store ids as UUIDs). Its message carries the header
``asynctasq-workflow: <workflow id>:<index>:<token>``. Its claim is
``workflow:<id>:<index>``; a chord's countdown ``workflow:<id>:done``; a cancelled
workflow's mark ``workflow:<id>:cancelled``.

The plan is read back by workers, so it is hostile input: `decode` checks its size, shape,
types and bounds, and a worker never imports or runs anything because of it (the messages
it queues are checked like any other by whichever worker takes them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from asynctasq.core import envelope
from asynctasq.core.options import MAX_SECONDS, check_queue
from asynctasq.errors import MalformedMessageError

Kind = Literal["chain", "group", "chord"]

HEADER = "asynctasq-workflow"
"""The message header that makes a message a workflow step."""
CANCELLED = "cancelled"
"""A step's claim once its workflow was cancelled before it started."""
RUNNING_PREFIX = "run:"
"""A step's claim once a worker started it: ``run:<token>``."""
MAX_STEPS = 1000
"""Most steps in one workflow (a chord's countdown is a bitmap in a claim of 256 chars)."""
MAX_PLAN_BYTES = 64 * 1024 * 1024
"""Largest stored plan a worker reads (the steps' arguments make most of it)."""
DEFAULT_TTL = 86400.0
"""Seconds a workflow's plan, claims and its steps' results are kept by default."""

_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_HEADER_VALUE = re.compile(rf"({_ID}):(\d{{1,4}}):({_ID})")


def plan_key(workflow_id: str) -> str:
    return f"workflow:{workflow_id}"


def step_key(workflow_id: str, index: int) -> str:
    return f"workflow:{workflow_id}:{index}"


def done_key(workflow_id: str) -> str:
    return f"workflow:{workflow_id}:done"


def cancelled_key(workflow_id: str) -> str:
    return f"workflow:{workflow_id}:cancelled"


def step_id(workflow_id: str, index: int, token: str) -> str:
    """The task id of step `index` queued under `token`: the token itself (a UUID)."""
    return token


def holder_token(holder: str | None) -> str | None:
    """The token of the copy a step's claim names (queued or started), or None (not
    queued, or cancelled)."""
    if holder is None or holder == CANCELLED:
        return None
    return holder.removeprefix(RUNNING_PREFIX)


def header_value(workflow_id: str, index: int, token: str) -> str:
    return f"{workflow_id}:{index}:{token}"


def parse_header(value: str) -> tuple[str, int, str]:
    """(workflow id, step index, token) of a step's header.

    Raises:
        MalformedMessageError: the value is not one this module writes.
    """
    match = _HEADER_VALUE.fullmatch(value)
    if match is None:
        raise MalformedMessageError(f"malformed {HEADER} header {value[:100]!r}")
    return match[1], int(match[2]), match[3]


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step of a plan."""

    task_name: str
    queue: str
    delay: float
    visibility_timeout: float
    track: float
    takes_previous: bool
    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """A workflow's steps and how they are linked.

    A chain runs its steps in order; a group runs all at once; a chord runs all but its last
    step at once, then the last with their results.
    """

    kind: Kind
    ttl: float
    steps: tuple[PlannedStep, ...]

    @property
    def first(self) -> range:
        """The indexes of the steps queued at dispatch."""
        if self.kind == "chain":
            return range(1)
        if self.kind == "group":
            return range(len(self.steps))
        return range(len(self.steps) - 1)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": 1,
                "k": self.kind,
                "ttl": self.ttl,
                "s": [
                    {
                        "t": s.task_name,
                        "q": s.queue,
                        "d": s.delay,
                        "vt": s.visibility_timeout,
                        "tr": s.track,
                        "pr": s.takes_previous,
                        "p": s.envelope,
                    }
                    for s in self.steps
                ],
            }
        )


def _seconds(value: Any, *, positive: bool = False) -> bool:
    kind = type(value)
    return (
        (kind is int or kind is float)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
        and value <= MAX_SECONDS
    )


def _step(raw: Any, index: int) -> PlannedStep:
    if not isinstance(raw, dict):
        raise MalformedMessageError(f"step {index} of a stored workflow is not an object")
    name, queue, envelope = raw.get("t"), raw.get("q"), raw.get("p")
    if not (isinstance(name, str) and 0 < len(name) <= 1000):
        raise MalformedMessageError(f"step {index} of a stored workflow names no task")
    try:
        queue = check_queue(queue)
    except (TypeError, ValueError) as exc:
        raise MalformedMessageError(f"step {index} of a stored workflow: {exc}") from None
    if not (_seconds(raw.get("d")) and _seconds(raw.get("tr"))):
        raise MalformedMessageError(f"step {index} of a stored workflow has a malformed delay")
    if not _seconds(raw.get("vt"), positive=True):
        raise MalformedMessageError(
            f"step {index} of a stored workflow has a malformed visibility timeout"
        )
    takes_previous = raw.get("pr")
    if not isinstance(takes_previous, bool):
        raise MalformedMessageError(f"step {index} of a stored workflow: 'pr' is not a bool")
    if not isinstance(envelope, dict) or (
        takes_previous and not isinstance(envelope.get("args"), list)
    ):
        raise MalformedMessageError(f"step {index} of a stored workflow has no envelope")
    headers = envelope.get("h", {})
    if not isinstance(headers, dict):
        raise MalformedMessageError(f"step {index} of a stored workflow has malformed headers")
    return PlannedStep(
        name, queue, float(raw["d"]), float(raw["vt"]), float(raw["tr"]), takes_previous, envelope
    )


def decode(raw: bytes) -> Plan:
    """A stored plan, checked.

    Raises:
        MalformedMessageError: it is too large or not a plan this module writes (named).
    """
    if len(raw) > MAX_PLAN_BYTES:
        raise MalformedMessageError(f"a stored workflow is {len(raw)} bytes, over the limit")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessageError(f"a stored workflow is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or isinstance(doc.get("v"), bool):
        raise MalformedMessageError("a stored workflow is not a version 1 plan")
    kind, ttl, steps = doc.get("k"), doc.get("ttl"), doc.get("s")
    if kind not in ("chain", "group", "chord"):
        raise MalformedMessageError(f"a stored workflow has an unknown kind {str(kind)[:40]!r}")
    if not _seconds(ttl, positive=True):
        raise MalformedMessageError("a stored workflow has a malformed ttl")
    least = 2 if kind == "chord" else 1
    if not isinstance(steps, list) or not least <= len(steps) <= MAX_STEPS:
        raise MalformedMessageError(
            f"a stored workflow has no list of {least} to {MAX_STEPS} steps"
        )
    assert isinstance(ttl, int | float)  # checked by _seconds
    return Plan(kind, float(ttl), tuple(_step(s, i) for i, s in enumerate(steps)))


def render(
    plan: Plan, workflow_id: str, index: int, token: str, now: float, previous: Any = None
) -> bytes:
    """The message of step `index`, queued now under `token`; `previous` is the wire form
    of the value it receives first (steps that take the previous result).

    Raises:
        MalformedMessageError: the step cannot be encoded again (a stored envelope nested
            deeper than JSON encoding goes, which decoding accepted).
    """
    step = plan.steps[index]
    try:
        return envelope.resend(
            step.envelope,
            task_id=step_id(workflow_id, index, token),
            at=now,
            headers={HEADER: header_value(workflow_id, index, token)},
            first=previous,
            prepend=step.takes_previous,
        )
    except orjson.JSONEncodeError as exc:
        raise MalformedMessageError(f"step {index} cannot be encoded again: {exc}") from None
