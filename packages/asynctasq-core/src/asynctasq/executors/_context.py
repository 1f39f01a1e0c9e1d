"""A multiprocessing context whose children never run the parent's ``__main__`` script.

With the forkserver and spawn start methods, Python re-runs the parent's main script in every
new child (as ``__mp_main__``) unless the script guards itself with
``if __name__ == "__main__":``. A script that starts a worker at top level would then start a
worker in each child, each with its own pool: a fork bomb. Task children do not need the
parent's main module (they import task code by its module name), so we start them with the
main module hidden from multiprocessing's preparation data.
"""

from __future__ import annotations

import multiprocessing.context as mp_context
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()


@contextmanager
def _main_hidden() -> Iterator[None]:
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _lock:
        saved: dict[str, Any] = {
            k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__
        }
        main.__dict__.pop("__file__", None)
        main.__dict__["__spec__"] = None
        try:
            yield
        finally:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


class _ForkServerChild(mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with _main_hidden():
            return mp_context.ForkServerProcess._Popen(process_obj)


class _SpawnChild(mp_context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with _main_hidden():
            return mp_context.SpawnProcess._Popen(process_obj)


class ForkServerContext(mp_context.ForkServerContext):
    """The forkserver start method, without re-running ``__main__``."""

    Process = _ForkServerChild


class SpawnContext(mp_context.SpawnContext):
    """The spawn start method, without re-running ``__main__``."""

    Process = _SpawnChild


def task_process_context() -> mp_context.BaseContext:
    """The context task children are started with on this platform."""
    return ForkServerContext() if sys.platform.startswith("linux") else SpawnContext()
