"""The ``asynctasq`` command line (typer + rich).

``asynctasq worker``, ``queues``, ``dead-letters``, ``purge``, ``doctor``, ``migrate``, and
the sub-commands driver packages add through the ``asynctasq.cli`` entry-point group.
"""

from asynctasq_cli.app import app, main

__all__ = ["app", "main"]
