"""The ``asynctasq`` command line (typer + rich).

``asynctasq worker``, ``queues``, ``status``, ``tasks``, ``cancel``, ``workers``, ``events``,
``dead-letters``, ``purge``, ``doctor``, ``migrate``, and
the sub-commands driver packages add through the ``asynctasq.cli`` entry-point group. The
typer application is ``asynctasq_cli.app.app``; the console script is `main`.
"""

from asynctasq_cli.app import main

__all__ = ["main"]
