"""The click types typer runs on.

typer (>= 0.29) vendors a trimmed click as ``typer._click``: its commands, contexts and
exceptions are those classes, not the separately installable ``click``. This module is the
one place that reaches into it.
"""

from __future__ import annotations

from typer._click import ClickException, Command, Context
from typer._click.exceptions import UsageError

__all__ = ["ClickException", "Command", "Context", "UsageError"]
