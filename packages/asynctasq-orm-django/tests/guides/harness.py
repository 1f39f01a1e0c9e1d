"""Runs one Django guide example against a real database, then a worker.

Usage: python harness.py DIR APP REPORT.json

The example is the ``models.py`` of the app ``APP`` in ``DIR``. Start-up is what the package
README tells a worker to do: import a setup module (``asynctasq_setup``: settings module and
``django.setup()``) before any task module. Then the tables and the rows ``main()`` fetches
are created, ``main()`` dispatches, the rows change, and a burst worker on the in-memory
queues runs the tasks; they print what they saw.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from asynctasq.drivers.memory import MemoryDriver
from asynctasq.worker import Worker


async def scenario(m: Any, root: Path, report: dict[str, object]) -> None:
    await m.main()
    await m.User.objects.filter(id=1).aupdate(email="fresh@example.com", name="Ada Fresh")
    await m.Product.objects.filter(id=5).aupdate(name="Fresh Lamp", price=Decimal("12.00"))
    memory = MemoryDriver(namespace="guides")
    report["dispatched"] = len(memory.messages())
    worker = Worker(
        memory,
        queues=sorted({m.queue for m in memory.messages()}),
        burst=True,
        install_signal_handlers=False,
        allowed_roots=[str(root)],
    )
    await worker.run()
    report["succeeded"] = worker.stats.succeeded
    report["dead"] = [[d.failure.exception_type, d.failure.message] for d in memory.dead_letters()]


def main() -> None:
    root, app, report_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    sys.path.insert(0, str(root))
    importlib.import_module("asynctasq_setup")  # = asynctasq worker --import asynctasq_setup
    from django.db import connection, connections

    m = importlib.import_module(f"{app}.models")
    with connection.schema_editor() as editor:
        editor.create_model(m.User)
        editor.create_model(m.Product)
    m.User.objects.create(id=1, email="ada@example.com", name="Ada")
    m.Product.objects.create(id=5, name="Lamp", price=Decimal("10.00"))
    report: dict[str, object] = {}
    asyncio.run(scenario(m, root, report))
    connections.close_all()
    report_path.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
