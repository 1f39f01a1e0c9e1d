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


def _refuse() -> None:
    raise TypeError("this result cannot be read back")


class _Unreadable:
    """Pickled in the child, fails to unpickle in the worker."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _refuse, ()


@task(process=True, queue="child-death", max_attempts=1)
def unreadable_result() -> _Unreadable:
    return _Unreadable()


@task(process=True, queue="child-death", max_attempts=1)
def touch(path: str) -> None:
    with open(path, "w") as f:
        f.write(str(os.getpid()))


@task(process=True, queue="orphan", max_attempts=1)
def outlive_the_worker(path: str) -> None:
    """Says which process runs it, then runs far longer than the test waits."""
    import time
    from pathlib import Path

    Path(path).write_text(str(os.getpid()))
    time.sleep(120)
