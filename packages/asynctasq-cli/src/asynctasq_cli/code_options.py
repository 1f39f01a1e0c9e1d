"""The options naming the task code a command imports: ``--import`` and ``--allowed-root``.

``asynctasq worker``, ``asynctasq schedules`` and ``asynctasq dashboard`` import the task
modules the same way (the allowed roots first on ``sys.path``); each command words its help
for what the modules are for there.
"""

from __future__ import annotations

from typing import Any

import typer


def imports_option(help: str, *, panel: str | None = None) -> Any:
    """``--import MODULE`` / ``-i`` (repeatable), with `help`, in help panel `panel`."""
    return typer.Option(
        "--import",
        "-i",
        metavar="MODULE",
        help=help,
        show_default=False,
        rich_help_panel=panel,
    )


def allowed_roots_option(help: str, *, panel: str | None = None) -> Any:
    """``--allowed-root DIR`` (repeatable), with `help`, in help panel `panel`."""
    return typer.Option(
        "--allowed-root",
        metavar="DIR",
        help=help,
        show_default=False,
        rich_help_panel=panel,
    )


__all__ = ["allowed_roots_option", "imports_option"]
