"""Rich output for tasks: `print` with markup and pretty data, and Rich's building blocks."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.pretty import Pretty
from rich.syntax import Syntax
from rich.table import Table

console = Console()
"""The shared console; falls back to plain text when output is not a terminal."""


def print(*objects: Any, sep: str = " ", end: str = "\n", **kwargs: Any) -> None:
    """A drop-in `print` that understands Rich markup and pretty-prints data.

    Strings may use markup (``"[bold red]error[/]"``); dicts, lists and Rich renderables are
    shown formatted and highlighted.
    """
    rendered = [Pretty(o) if isinstance(o, dict | list | tuple | set) else o for o in objects]
    console.print(*rendered, sep=sep, end=end, **kwargs)


__all__ = ["Panel", "Syntax", "Table", "console", "print"]
