"""The task envelope: the bytes a message carries, and turning them back into a task.

One orjson document per task (version 2)::

    {"v": 2,                                 # the envelope version
     "id": "<uuid>", "task": "module:qualname", "at": <dispatch epoch seconds>,
     "o": {"ma": 3,                          # max_attempts: most runs in total
           "rd": 60.0,                       # retry_delay (seconds)
           "rs": "exponential",              # retry strategy: "fixed" or "exponential"
           "rm": 3600.0,                     # longest retry delay (seconds)
           "rj": true,                       # retry jitter
           "vt": 300.0,                      # visibility timeout (seconds)
           "to": 30.0,                       # timeout (seconds); absent: no limit
           "kr": 3600.0},                    # keep the result (seconds); absent: not kept
     "args": [...], "kwargs": {...}          # function tasks
     "attrs": {...}                          # class tasks
     "r": 1,                                 # present when arguments need async decoding
     "src": [abs path, relative path],       # task defined in a script run as __main__
     "tr": <seconds>,                        # tracked: keep its status this long after it ends
     "x": <epoch seconds>,                   # expires: not started after this moment
     "xd": 1,                                # an expired task is dropped, not dead-lettered
     "u": "unique:<task>:<key>",             # unique: the claim the worker releases at the end
     "h": {"name": "value", ...},            # message headers (asynctasq.core.headers)
     "l": {"k": "limit:<task>[:<key>]",      # concurrency and rate limits: the claim key,
           "c": 2, "r": [100, 60.0],         # most runs at once, [starts, per seconds],
           "t": 30.0}}                       # a crashed worker's slot lease (core.limits)

Only "v", "task", "o" and the arguments ("args" and "kwargs", or "attrs") are required.
Optional keys, top-level or in "o", may be added without a new version: a worker ignores
keys it does not know, so a key that an older worker must not ignore needs a new version.

Version 1 (until 0.x) differed only in "o", a positional array
``[max_attempts, retry_delay, strategy, max_delay, jitter, timeout, visibility,
keep_result]`` (keep_result only when kept; timeout null when none). Workers still read it,
so messages queued before an upgrade run; they never write it. A message of any other
version is dead-lettered, naming its version and the versions this worker reads.

Arguments are in the serializer's tagged wire form. Anything that does not match this shape
is a `MalformedMessageError`: the worker dead-letters it without running anything, and every
value is checked for type and range first.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from asynctasq.core import registry
from asynctasq.core.function import FunctionTask, TaskFunction
from asynctasq.core.headers import NO_HEADERS, headers_problem
from asynctasq.core.limits import MessageLimits
from asynctasq.core.limits import from_wire as limits_from_wire
from asynctasq.core.options import (
    MAX_ATTEMPTS,
    ResolvedOptions,
    is_positive_seconds,
    is_seconds,
)
from asynctasq.core.task import BaseTask
from asynctasq.core.timing import epoch
from asynctasq.errors import MalformedMessageError
from asynctasq.serializer import from_wire, from_wire_async, to_wire_with_info
from asynctasq.serializer.encode import is_plain_scalar

VERSION = 2
"""The envelope version this worker writes (see `READS` for those it reads)."""


UNIQUE_PREFIX = "unique:"
"""Every unique task's claim key starts with it: a message can release no other claim."""
MAX_UNIQUE_KEY = 512
"""Longest claim key a message may name (`asynctasq.drivers.claims.MAX_CLAIM_KEY_LENGTH`)."""
LATEST_EPOCH = 1e11
"""Epoch seconds beyond any real moment (year 5138): a larger one in a message is absurd."""


def encode(
    task: BaseTask[Any],
    task_id: str,
    options: ResolvedOptions,
    now: float,
    unique_key: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Serialize `task` for the queue (`unique_key`: the claim it holds, if unique;
    `headers`: checked message headers, see `asynctasq.core.headers`).

    Raises:
        SerializationError: an argument or attribute cannot be serialized (named in the
            message, with the offending type).
    """
    doc: dict[str, Any] = {
        "v": VERSION,
        "id": task_id,
        "task": "",
        "at": now,
        "o": options.wire,
    }
    uses_async = False
    if isinstance(task, FunctionTask):
        function = task.function
        doc["task"] = function.name
        names = function.positional_names
        args = []
        for i, value in enumerate(task.args):
            if is_plain_scalar(value):  # nothing to convert, no error to name
                args.append(value)
                continue
            name = names[i] if i < len(names) else f"*args[{i - len(names)}]"
            wire, refs = to_wire_with_info(value, path=f"argument {name!r} of {function.name}")
            uses_async |= refs
            args.append(wire)
        kwargs = {}
        for key, value in task.kwargs.items():
            if is_plain_scalar(value):
                kwargs[key] = value
                continue
            wire, refs = to_wire_with_info(value, path=f"argument {key!r} of {function.name}")
            uses_async |= refs
            kwargs[key] = wire
        doc["args"] = args
        doc["kwargs"] = kwargs
    else:
        name = type(task)._task_name
        doc["task"] = name
        attrs = {}
        for key, value in task._wire_state().items():
            if is_plain_scalar(value):
                attrs[key] = value
                continue
            wire, refs = to_wire_with_info(value, path=f"attribute {key!r} of {name}")
            uses_async |= refs
            attrs[key] = wire
        doc["attrs"] = attrs
    if uses_async:
        doc["r"] = 1
    if options.track:
        doc["tr"] = options.track
    if options.expires is not None:
        doc["x"] = epoch(options.expires, now)
        if options.drop_expired:
            doc["xd"] = 1
    if unique_key is not None:
        doc["u"] = unique_key
    if headers:
        doc["h"] = headers
    if options.limits is not None:
        # Imported here: limit_keys uses core.unique, which imports this module.
        from asynctasq.core.limit_keys import limits_wire

        limits = limits_wire(task, doc["task"], options.limits)
        if limits is not None:
            doc["l"] = limits
    script = registry.script_of(doc["task"])
    if script is not None:
        doc["src"] = script
    return orjson.dumps(doc)


@dataclass(slots=True)
class Envelope:
    """A decoded message, its arguments still in wire form."""

    task_id: str
    task: str
    dispatched_at: float
    max_attempts: int
    retry_delay: float
    retry_strategy: str
    retry_max_delay: float
    retry_jitter: bool
    timeout: float | None
    visibility_timeout: float
    keep_result: float
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    attrs: dict[str, Any] | None
    async_refs: bool
    script: list[str] | None = None
    """Where a task defined in a ``__main__`` script lies: [absolute, relative] path."""
    track: float = 0.0
    """Seconds to keep the task's status record after it ends; 0 when it is not tracked."""
    expires_at: float = 0.0
    """Epoch seconds after which the task is not started; 0 when it never expires."""
    drop_expired: bool = False
    """Acknowledge and drop the task once expired, instead of dead-lettering it."""
    unique_key: str | None = None
    """The claim a unique task holds while queued or running (released when it ends)."""
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)
    """Headers dispatch-side middleware attached (`asynctasq.core.headers`); empty if none."""
    limits: MessageLimits | None = None
    """Its concurrency and rate limits (`asynctasq.core.limits`); None for most tasks."""


def resend(
    doc: Mapping[str, Any],
    *,
    task_id: str,
    at: float,
    headers: Mapping[str, str],
    first: Any = None,
    prepend: bool = False,
) -> bytes:
    """A stored envelope document sent again as a new message: a new id and dispatch
    time, `headers` added to its own, and with `prepend` the wire value `first` put
    before its positional arguments (a workflow step given the previous step's result).
    The key names stay this module's business."""
    out = dict(doc)
    out["id"] = task_id
    out["at"] = at
    out["h"] = {**out.get("h", {}), **headers}
    if prepend:
        out["args"] = [first, *out["args"]]
    return orjson.dumps(out)


def _number(value: Any) -> bool:
    """An int or a float, not a bool (what JSON numbers decode to, exactly these types)."""
    kind = type(value)
    return kind is int or kind is float


def _short(value: Any) -> str:
    """`value` for an error message, bounded: the message may be hostile and huge."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


READS = (1, 2)
"""The envelope versions this worker reads."""

_V1_NAMES = ("ma", "rd", "rs", "rm", "rj", "to", "vt", "kr")
"""Version 1's positional options, named as in version 2."""


def _v1_options(opts: Any) -> dict[str, Any]:
    """Version 1's options array, as version 2's named object."""
    if not isinstance(opts, list) or len(opts) not in (7, 8):
        raise MalformedMessageError(
            f"message has malformed options (not a list of 7 or 8 settings): {_short(opts)}"
        )
    return dict(zip(_V1_NAMES, opts, strict=False))


def _options_problem(opts: dict[str, Any]) -> str | None:
    """What is wrong with the named options, or None."""
    attempts = opts.get("ma")
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        return "max_attempts ('ma') is not a whole number"
    if not 0 <= attempts <= MAX_ATTEMPTS:
        return f"max_attempts ('ma') is not between 0 and {MAX_ATTEMPTS}"
    if not (is_seconds(opts.get("rd")) and is_seconds(opts.get("rm"))):
        return "a retry delay ('rd', 'rm') is not a number of seconds"
    if opts.get("rs") not in ("fixed", "exponential"):
        return "the retry strategy ('rs') is neither fixed nor exponential"
    if not isinstance(opts.get("rj"), bool):
        return "retry jitter ('rj') is not true or false"
    timeout = opts.get("to")
    if not (timeout is None or is_positive_seconds(timeout)):
        return "the timeout ('to') is not a positive number of seconds"
    if not is_positive_seconds(opts.get("vt")):
        return "the visibility timeout ('vt') is not a positive number of seconds"
    if not is_seconds(opts.get("kr", 0.0)):
        return "the result retention ('kr') is not a number of seconds"
    return None


def decode(payload: bytes) -> Envelope:
    """Parse and check an envelope (version 2, or 1); `MalformedMessageError` names what is
    wrong.

    Every value is checked for type and range: a message decides how often and how soon a
    worker retries it and how it renews its lease, so none may be absurd.
    """
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessageError(f"message is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedMessageError("message is not a JSON object")
    version = doc.get("v")
    if version not in READS or isinstance(version, bool):
        raise MalformedMessageError(
            f"unsupported envelope version {_short(version)} (this worker reads versions "
            f"{' and '.join(map(str, READS))}; a message from a newer asynctasq needs a newer "
            "worker)"
        )
    task = doc.get("task")
    if not isinstance(task, str) or ":" not in task:
        raise MalformedMessageError(f"message names no task ('task' is {_short(task)})")
    opts = doc.get("o")
    if version == 1:
        opts = _v1_options(opts)
    elif not isinstance(opts, dict):
        raise MalformedMessageError(
            f"message has malformed options (not an object of settings): {_short(opts)}"
        )
    problem = _options_problem(opts)
    if problem is not None:
        raise MalformedMessageError(f"message has malformed options ({problem}): {_short(opts)}")
    task_id = doc.get("id", "")
    if not isinstance(task_id, str) or len(task_id) > 200:
        raise MalformedMessageError(f"message has a malformed id {_short(task_id)}")
    args, kwargs, attrs = doc.get("args"), doc.get("kwargs"), doc.get("attrs")
    if attrs is None and not (isinstance(args, list) and isinstance(kwargs, dict)):
        raise MalformedMessageError("message has neither function arguments nor attributes")
    if attrs is not None and not isinstance(attrs, dict):
        raise MalformedMessageError("message attributes are not an object")
    script = doc.get("src")
    if script is not None and not (
        isinstance(script, list)
        and len(script) == 2
        and all(isinstance(p, str) and len(p) <= 4096 for p in script)
    ):
        raise MalformedMessageError("message has a malformed script location ('src')")
    track = doc.get("tr", 0.0)
    if not is_seconds(track):
        raise MalformedMessageError(
            f"message has a malformed tracking time ('tr' is {_short(track)})"
        )
    expires_at, drop_expired, unique_key = _timed_and_unique(doc)
    headers = doc.get("h")
    if headers is None:
        headers = NO_HEADERS
    else:
        problem = headers_problem(headers)
        if problem is not None:
            raise MalformedMessageError(f"message has malformed headers ('h'): {problem}")
    limits = doc.get("l")
    if limits is not None:
        try:
            limits = limits_from_wire(limits)
        except ValueError as exc:
            raise MalformedMessageError(f"message has malformed limits ('l'): {exc}") from None
    at = doc.get("at")
    # Dispatch time in epoch seconds: anything else (absurd, negative) reads as unknown.
    dispatched_at = float(at) if isinstance(at, int | float) and 0 < at < 1e11 else 0.0
    timeout = opts.get("to")
    return Envelope(
        task_id=task_id,
        task=task,
        dispatched_at=dispatched_at,
        max_attempts=opts["ma"],
        retry_delay=float(opts["rd"]),
        retry_strategy=opts["rs"],
        retry_max_delay=float(opts["rm"]),
        retry_jitter=opts["rj"],
        timeout=None if timeout is None else float(timeout),
        visibility_timeout=float(opts["vt"]),
        keep_result=float(opts.get("kr", 0.0)),
        args=args,
        kwargs=kwargs,
        attrs=attrs,
        async_refs=bool(doc.get("r")),
        script=script,
        track=float(track),
        expires_at=expires_at,
        drop_expired=drop_expired,
        unique_key=unique_key,
        headers=headers,
        limits=limits,
    )


def _timed_and_unique(doc: dict[str, Any]) -> tuple[float, bool, str | None]:
    """The expiry ("x", "xd") and unique claim ("u") of a message, checked.

    The claim key must be a unique task's (`UNIQUE_PREFIX`): a message may make a worker
    release its own task's claim, never a schedule's or anyone else's.
    """
    expires, drop, unique = doc.get("x"), doc.get("xd"), doc.get("u")
    if expires is None:
        expires = 0.0
    elif not (_number(expires) and 0 < expires < LATEST_EPOCH):
        raise MalformedMessageError(f"message has a malformed expiry ('x' is {_short(expires)})")
    if drop not in (None, 1) or isinstance(drop, bool):
        raise MalformedMessageError(f"message has a malformed expiry action ({_short(drop)})")
    if unique is not None and not (
        isinstance(unique, str)
        and unique.startswith(UNIQUE_PREFIX)
        and len(unique) <= MAX_UNIQUE_KEY
        and "\x00" not in unique
    ):
        raise MalformedMessageError(f"message has a malformed unique key ({_short(unique)})")
    return float(expires), drop == 1, unique


def _materialize(target: Any, env: Envelope, values: Any) -> BaseTask[Any]:
    if isinstance(target, TaskFunction):
        if env.args is None or env.kwargs is None:
            raise MalformedMessageError(
                f"{env.task} is a function task but the message has no arguments"
            )
        args, kwargs = values
        task: BaseTask[Any] = FunctionTask(target, tuple(args), kwargs)
    elif inspect.isclass(target) and issubclass(target, BaseTask):
        if env.attrs is None:
            raise MalformedMessageError(
                f"{env.task} is a class task but the message has no attributes"
            )
        task = target.__new__(target)
        task._options = {}
        task.__dict__.update(values)
    else:
        raise MalformedMessageError(f"{env.task} is not a task")
    task._task_id = env.task_id
    task._dispatched_at = (
        datetime.fromtimestamp(env.dispatched_at, UTC) if env.dispatched_at else None
    )
    return task


def _wire_values(env: Envelope) -> Any:
    if env.attrs is not None:
        return env.attrs
    return [env.args, env.kwargs]


def build(target: Any, env: Envelope) -> BaseTask[Any]:
    """The task instance an envelope describes (arguments decoded synchronously)."""
    decoded = from_wire(_wire_values(env))
    return _materialize(target, env, decoded)


async def build_async(target: Any, env: Envelope) -> BaseTask[Any]:
    """Like `build`, fetching references (ORM models) concurrently when there are any."""
    wire = _wire_values(env)
    decoded = await from_wire_async(wire) if env.async_refs else from_wire(wire)
    return _materialize(target, env, decoded)
