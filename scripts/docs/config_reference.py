"""The configuration reference, generated from the code (it cannot drift).

Sections and their settings come from `asynctasq.config.TaskDefaults` and
`asynctasq.config.WorkerSettings` (dataclass fields) and from each installed driver's
constructor (`asynctasq.drivers.registry.driver_settings`). Descriptions come from the
docstrings' ``Args:`` sections (`task()` and `Worker` for the first two, each driver's class);
`EXTRA_DESCRIPTIONS` fills in the few fields no docstring describes, and a test checks that
every key there is still a real field.

Run ``python -m scripts.docs.config_reference`` to print it; mkdocs inserts it where
``docs/reference/configuration.md`` says ``<!-- generated: configuration-reference -->``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import re
import textwrap
import typing
from dataclasses import dataclass
from typing import Any

from asynctasq.config import ENV_PREFIX, EventSettings, TaskDefaults, WorkerSettings

EXTRA_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "task_defaults": {
        "retry_strategy": "How the wait between runs grows when a task sets no retry strategy "
        "or delay of its own: `fixed` (always `retry_delay`) or `exponential` (doubling from "
        "`retry_delay`).",
        "retry_max_delay": "Longest wait between runs under the exponential strategy.",
        "retry_jitter": "Randomise exponential waits (a value in the upper half) so that tasks "
        "failing together do not retry together.",
        "track_ttl": "Seconds a tracked task's status record is kept after the task finished "
        "(`track=True` keeps it this long; `track=<seconds>` on a task sets its own).",
    },
    "events": {
        "enabled": "Workers publish task and worker events, and dispatching processes "
        "`task-enqueued`, to the driver's event stream (`asynctasq events`).",
        "retention": "Seconds events are kept for subscribers that read from the start.",
    },
    "worker": {
        "imports": "Modules the `asynctasq worker` command imports at start-up so their tasks "
        "are registered before the first message arrives.",
        "queues": "Queue names the worker serves, fairly (comma-separated in the environment).",
    },
}
"""Descriptions of fields that no docstring documents."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: where it lives, its type and default, and how to set it."""

    section: str
    name: str
    annotation: str
    default: str
    description: str

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section}_{self.name}".upper()


def docstring_args(obj: Any) -> dict[str, str]:
    """The ``Args:`` entries of a Google-style docstring, each joined into one line."""
    doc = inspect.getdoc(obj) or ""
    match = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)+)", doc, re.MULTILINE)
    if not match:
        return {}
    out: dict[str, str] = {}
    current = None
    for line in match.group(1).splitlines():
        entry = re.match(r"^    (\w+)(?: \([^)]*\))?: (.*)$", line)
        if entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def attribute_docstrings(cls: type[Any]) -> dict[str, str]:
    """The string literal right under each annotated field of `cls` (its attribute
    docstring, as documentation tools read them), each joined into one line."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    out: dict[str, str] = {}
    for field_, doc in itertools.pairwise(body):
        if (
            isinstance(field_, ast.AnnAssign)
            and isinstance(field_.target, ast.Name)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            out[field_.target.id] = " ".join(doc.value.value.split())
    return out


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "required"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(none)"
    return "none" if value is None else repr(value) if isinstance(value, str) else str(value)


def _dataclass_settings(section: str, cls: type[Any], described: dict[str, str]) -> list[Setting]:
    hints = typing.get_type_hints(cls)
    extra = EXTRA_DESCRIPTIONS.get(section, {})
    own = attribute_docstrings(cls)  # the field's own docstring, when nothing else says more
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append(
            Setting(
                section,
                f.name,
                _type_name(hints[f.name]),
                _default(default),
                extra.get(f.name) or described.get(f.name) or own.get(f.name, ""),
            )
        )
    return out


def core_sections() -> dict[str, list[Setting]]:
    """``task_defaults``, ``worker`` and ``events``."""
    from asynctasq.core.function import task
    from asynctasq.worker import Worker

    return {
        "task_defaults": _dataclass_settings("task_defaults", TaskDefaults, docstring_args(task)),
        "worker": _dataclass_settings("worker", WorkerSettings, docstring_args(Worker)),
        "events": _dataclass_settings("events", EventSettings, {}),
    }


def driver_sections() -> dict[str, tuple[str, list[Setting]]]:
    """Each installed driver: (its class path, its settings)."""
    from asynctasq.drivers.registry import driver_class, driver_settings, installed_drivers

    out = {}
    for name in installed_drivers():
        cls = driver_class(name)
        described = docstring_args(cls)
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # unresolvable annotations: show them as written
            hints = {}
        settings = [
            Setting(
                name,
                key,
                _type_name(hints.get(key, param.annotation)),
                _default(param.default),
                described.get(key, ""),
            )
            for key, param in driver_settings(cls).items()
        ]
        out[name] = (f"{cls.__module__}.{cls.__qualname__}", settings)
    return out


def cli_environment() -> list[tuple[str, str]]:
    """Environment variables only the command line reads: (variable, option)."""
    from scripts.docs.cli_reference import walk

    seen: dict[str, str] = {}
    for doc in walk():
        for _, names, text in doc.params:
            for var in re.findall(r"\b(ASYNCTASQ_[A-Z_]+)\b", text):
                longs = [n.strip(",") for n in names.split() if n.startswith("--")]
                seen.setdefault(var, longs[0] if longs else names)
    return sorted(seen.items())


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, reST double backticks made markdown."""
    return " ".join(text.replace("``", "`").split()).replace("|", "\\|")


def _table(settings: list[Setting]) -> list[str]:
    rows = [
        "| setting | environment variable | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    rows += [
        f"| `{s.name}` | `{s.env}` | `{_cell(s.annotation)}` | `{_cell(s.default)}` | "
        f"{_cell(s.description)} |"
        for s in settings
    ]
    return rows


def driver_table(name: str) -> str:
    """The settings table of one installed driver (for its page)."""
    sections = driver_sections()
    if name not in sections:
        return f"(driver {name!r} is not installed where these docs were built)"
    path, settings = sections[name]
    return "\n".join([f"Class: `{path}`.", "", *_table(settings)]) + "\n"


def render() -> str:
    """The reference as markdown."""
    out = ["## `driver`", ""]
    out += [
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
        f"| `driver` | `{ENV_PREFIX}DRIVER` | the embedded `sqlite` | Name of the driver "
        "dispatches and workers use unless a task names its own. |",
        "",
    ]
    for section, settings in core_sections().items():
        out += [f"## `{section}`", "", *_table(settings), ""]
    for name, (path, settings) in driver_sections().items():
        out += [f"## `{name}` driver", "", f"Class: `{path}`.", "", *_table(settings), ""]
    known = {s.env for group in core_sections().values() for s in group}
    known |= {s.env for _, group in driver_sections().values() for s in group}
    cli_only = [(var, opt) for var, opt in cli_environment() if var not in known]
    cli_only = [(v, o) for v, o in cli_only if not v.startswith(f"{ENV_PREFIX}SECTION")]
    if cli_only:
        out += ["## Command line only", "", "| environment variable | option |", "|---|---|"]
        out += [f"| `{var}` | `{opt}` |" for var, opt in cli_only if var != f"{ENV_PREFIX}DRIVER"]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
