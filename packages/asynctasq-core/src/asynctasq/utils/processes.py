"""Whether a process lives, and ending a child process with the one it works for."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0
"""How often `die_with` looks, where the system cannot say when a process ends."""


def die_with_parent(parent: int, signum: int) -> None:
    """Have the kernel send this process `signum` when its parent (`parent`, the pid that
    forked it) dies, and exit at once if that happened already. Elsewhere than on Linux,
    only the second part."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:  # died before the signal was asked for: none will come
        os._exit(1)


def die_with(pid: int) -> None:
    """Kill this process (SIGKILL) as soon as process `pid`, which is not its parent, ends.

    For a child forked by a server process on `pid`'s behalf (multiprocessing's forkserver
    stays alive as long as such children do, so the parent-death signal never comes). A
    daemon thread waits on a pidfd (Linux), else looks every `POLL_SECONDS`. `pid` must be
    alive when this is called (no reuse of its number yet), as a process asking for
    children is.
    """
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
        handle = None

    if handle is not None:
        fd = handle
        # A process forked by the task has no watching thread: it must not keep the pidfd.
        os.register_at_fork(after_in_child=lambda: _close_quietly(fd))

    def watch() -> None:
        if handle is not None:
            poller = select.poll()  # not select(): any descriptor number
            poller.register(handle, select.POLLIN)
            poller.poll()  # readable once the process has ended
        else:
            while process_alive(pid):
                time.sleep(POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="asynctasq-die-with", daemon=True).start()


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (a zombie counts: it has not been waited for yet).

    A number no process can have (0 and below name process groups; past the OS's range)
    is not one: pids read from file names or records may be anything.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


__all__ = ["POLL_SECONDS", "die_with", "die_with_parent", "process_alive"]
