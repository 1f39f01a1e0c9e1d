"""A queued message made readable for tests: its task name and arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asynctasq.core import envelope
from asynctasq.core.envelope import Envelope
from asynctasq.serializer import from_wire


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """What a message asks for.

    Attributes:
        task_id: The task's id.
        task: The task's name (``module:qualname``).
        args: Positional arguments of a function task (empty for a class task).
        kwargs: Keyword arguments of a function task, or the attributes of a class task.
        envelope: Everything else the message carries (options, dispatch time, ...).
    """

    task_id: str
    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    envelope: Envelope


def decode_message(payload: bytes) -> DecodedMessage:
    """Decode a message's payload (e.g. `QueuedMessage.payload` or `DeadLetter.payload`).

    Arguments come back as Python values. Those that the worker loads again when the task
    runs (ORM models) stay in their wire form (``{"__aq__": tag, "v": ...}``): decoding them
    would query a database.

    Raises:
        MalformedMessageError: the payload is not a valid envelope.
        DeserializationError: an argument cannot be decoded.
    """
    env = envelope.decode(payload)
    if env.attrs is not None:
        args: tuple[Any, ...] = ()
        kwargs = env.attrs if env.async_refs else from_wire(env.attrs)
    else:
        wire: list[Any] = [env.args, env.kwargs]
        values: list[Any] = wire if env.async_refs else from_wire(wire)
        args, kwargs = tuple(values[0]), dict(values[1])
    return DecodedMessage(env.task_id, env.task, args, dict(kwargs), env)
