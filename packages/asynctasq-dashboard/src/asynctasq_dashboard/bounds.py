"""How much of each value read from the broker a page shows.

Queue names, task names, error messages, tracebacks and arguments are written by whoever can
write to the broker: a page shows a bounded prefix of each (escaped by the templates), so a
hostile or merely huge value costs a bounded amount of work and bytes per page.
"""

from __future__ import annotations

from asynctasq_cli.output import visible

NAME = 200
"""Characters of a queue name, task name, task id or worker id."""
MESSAGE = 2_000
"""Characters of an error or progress message."""
TRACEBACK = 20_000
"""Characters of a traceback (its end is kept: the innermost frames say the most)."""
ARGUMENTS = 10_000
"""Characters of a task's arguments or result, as JSON."""
QUEUES = 200
"""Queues whose depths one refresh reads (the busiest are shown first)."""
ROWS = 50
"""Rows of a list (tasks, dead letters, workers, running tasks of a worker)."""
RAW_JSON = 256 * 1024
"""Bytes of a stored result that are parsed to be shown as JSON; larger ones are cut."""
PARAM = 1_000
"""Characters of a queue name or task id a link or form carries: the longest a page or an
action accepts. A longer value (only a forged one is) is carried cut one past it, so the
page or action refuses it rather than acting on whatever its first `PARAM` characters name."""


def ref(value: object) -> str:
    """`value` as a link or form carries it: at most `PARAM` + 1 characters."""
    text = value if isinstance(value, str) else str(value)
    return text[: PARAM + 1]


def clip(text: object, limit: int = NAME, *, multiline: bool = False) -> str:
    """`text` cut to `limit` characters, control characters written as escapes.

    Escaping for HTML is the templates' job (autoescape); this bounds the size and keeps
    invisible characters (bidi overrides, terminal escapes) from misleading a reader.
    """
    value = text if isinstance(text, str) else str(text)
    if len(value) > limit:
        value = value[:limit] + "…"
    return visible(value, multiline=multiline)


def tail(text: str, limit: int = TRACEBACK) -> str:
    """The last `limit` characters of a multi-line text (a traceback), escapes shown."""
    if len(text) > limit:
        text = "…" + text[-limit:]
    return visible(text, multiline=True)


__all__ = [
    "ARGUMENTS",
    "MESSAGE",
    "NAME",
    "PARAM",
    "QUEUES",
    "RAW_JSON",
    "ROWS",
    "TRACEBACK",
    "clip",
    "ref",
    "tail",
]
