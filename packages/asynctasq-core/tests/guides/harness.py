"""Runs one guide example as its author would, then a worker over what it dispatched.

Usage: python harness.py EXAMPLE.py REPORT.json

The example runs as ``__main__`` (its ``if __name__ == "__main__"`` block included); when it
defines ``main()`` but never runs it, the harness runs it. Then a burst worker on the same
in-memory queues executes every ready task, and a JSON report says what happened.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import runpy
import sys
from pathlib import Path

from asynctasq.drivers.memory import MemoryDriver, _shared
from asynctasq.runner import run
from asynctasq.worker import Worker


def main() -> None:
    example, report_path = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path.insert(0, str(example.parent))
    source = example.read_text()
    namespace = runpy.run_path(str(example), run_name="__main__")
    guarded = 'if __name__ == "__main__"' in source
    entry = namespace.get("main")
    if not guarded and inspect.iscoroutinefunction(entry):
        run(entry())
    state = _shared.get("guides")
    queues = sorted({r.queue for r in state.records.values()}) if state else []
    report: dict[str, object] = {
        "queues": queues,
        "dispatched": len(state.records) if state else 0,
        "ready": sum(len(q) for q in state.ready.values()) if state else 0,
    }
    if queues:
        driver = MemoryDriver(namespace="guides")
        worker = Worker(
            driver,
            queues=queues,
            burst=True,
            concurrency=50,
            install_signal_handlers=False,
            allowed_roots=[str(example.parent)],
        )
        asyncio.run(worker.run())
        report["succeeded"] = worker.stats.succeeded
        report["dead"] = (
            [[d.failure.exception_type, d.failure.message] for d in state.dead.values()]
            if state
            else []
        )
        report["retried"] = worker.stats.retried
    report_path.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
