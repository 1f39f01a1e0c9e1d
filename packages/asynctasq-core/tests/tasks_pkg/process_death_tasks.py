"""Process tasks whose child dies mid-run (imported by name in the worker and its children)."""

from __future__ import annotations

import os
import signal

from asynctasq import task


@task(process=True, queue="child-death", max_attempts=2, retry_delay=0)
def exit_with_three() -> None:
    os._exit(3)  # ends the child at once: no exception, no cleanup


@task(process=True, queue="child-death", max_attempts=1)
def killed_by_sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@task(process=True, queue="child-death", max_attempts=1)
def raises_process_expired() -> None:
    from pebble import ProcessExpired

    raise ProcessExpired("a pool inside the task lost its child", code=5)
