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

from asynctasq.drivers.memory import MemoryDriver
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
    driver = MemoryDriver(namespace="guides")
    messages = driver.messages()
    queues = sorted({m.queue for m in messages})
    report: dict[str, object] = {
        "queues": queues,
        "dispatched": len(messages),
        "ready": len(driver.messages(state="ready")),
    }
    if queues:
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
        report["dead"] = [
            [d.failure.exception_type, d.failure.message] for d in driver.dead_letters()
        ]
        report["retried"] = worker.stats.retried
    report_path.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
