"""The command-line reference, generated from the typer application (it cannot drift).

Walks ``asynctasq_cli.app.app`` through click's introspection (commands, groups, options,
arguments, help panels) and renders markdown: one section per command, one table per help
panel. Driver packages' sub-commands (the ``asynctasq.cli`` entry points installed here)
are included like built-ins.

Run ``python -m scripts.docs.cli_reference`` to print it; mkdocs inserts it where
``docs/reference/cli.md`` says ``<!-- generated: cli-reference -->``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import typer

from asynctasq_cli.clicktypes import Context

ROOT_NAME = "asynctasq"


@dataclass(frozen=True, slots=True)
class CommandDoc:
    """One command (or group) of the CLI, as the reference shows it."""

    path: tuple[str, ...]
    usage: str
    help: str
    params: list[tuple[str, str, str]]  # (panel, names, help)
    subcommands: list[tuple[str, str]]  # (name, one-line help)


def _root_command() -> Any:
    from asynctasq_cli.app import app

    return typer.main.get_command(app)


def walk(command: Any | None = None) -> Iterator[CommandDoc]:
    """Every command of the CLI, depth first, groups before their members."""
    root = command if command is not None else _root_command()
    # A wide fixed terminal width: the usage lines must not depend on who renders them.
    yield from _walk(root, Context(root, info_name=ROOT_NAME, terminal_width=1000), (ROOT_NAME,))


def _walk(command: Any, ctx: Context, path: tuple[str, ...]) -> Iterator[CommandDoc]:
    subcommands: list[tuple[str, str]] = []
    children: list[tuple[str, Any]] = []
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            child = command.get_command(ctx, name)
            if child is None or getattr(child, "hidden", False):
                continue
            children.append((name, child))
            subcommands.append((name, _first_line(child.help or child.short_help or "")))
    params = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is None:  # arguments have no help record in click: build one
            record = (param.name.upper(), getattr(param, "help", None) or "")
        panel = getattr(param, "rich_help_panel", None) or (
            "Arguments" if type(param).__name__.endswith("Argument") else "Options"
        )
        params.append((panel, record[0], record[1]))
    yield CommandDoc(
        path=path,
        usage=command.get_usage(ctx).removeprefix("Usage: "),
        help=(command.help or "").strip(),
        params=params,
        subcommands=subcommands,
    )
    for name, child in children:
        yield from _walk(child, Context(child, info_name=name, parent=ctx), (*path, name))


def _first_line(text: str) -> str:
    return text.strip().split("\n\n")[0].replace("\n", " ")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(commands: list[CommandDoc] | None = None) -> str:
    """The reference as markdown (second-level heading per command)."""
    docs = commands if commands is not None else list(walk())
    out: list[str] = []
    for doc in docs:
        depth = min(len(doc.path), 4)
        out.append(f"{'#' * (depth + 1)} `{' '.join(doc.path)}`\n")
        if doc.help:
            out.append(doc.help.replace("\b\n", "") + "\n")
        out.append(f"Usage: `{doc.usage}`\n")
        if doc.subcommands:
            out.append("| command | what it does |\n|---|---|")
            out.extend(
                f"| [`{name}`](#{_anchor((*doc.path, name))}) | {_cell(text)} |"
                for name, text in doc.subcommands
            )
            out.append("")
        panels: dict[str, list[tuple[str, str]]] = {}
        for panel, names, text in doc.params:
            panels.setdefault(panel, []).append((names, text))
        for panel, rows in panels.items():
            out.append(f"| {panel} | |\n|---|---|")
            out.extend(f"| `{_cell(names)}` | {_cell(text)} |" for names, text in rows)
            out.append("")
    return "\n".join(out)


def _anchor(path: tuple[str, ...]) -> str:
    """The heading id python-markdown's toc gives ``# `a b c```."""
    return "-".join(path).lower()


def command_paths() -> set[tuple[str, ...]]:
    """Every command path, e.g. ``("asynctasq", "dead-letters", "list")``."""
    return {doc.path for doc in walk()}


if __name__ == "__main__":
    print(render())
