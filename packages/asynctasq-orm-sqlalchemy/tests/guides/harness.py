"""Runs one SQLAlchemy guide example against a real database, then a worker.

Usage: python harness.py DIR MODULE REPORT.json

Imports the example (as the worker would import the user's module), creates its tables and
the rows its ``main()`` fetches, runs ``main()`` (which dispatches), changes the rows, then a
burst worker on the in-memory queues runs the tasks; they print what they saw. The worker
gets nothing the example does not set up itself (a class-based example's ``session_var``
holds no value in it), as in a separate ``asynctasq worker`` process.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import update

from asynctasq.drivers.memory import MemoryDriver
from asynctasq.worker import Worker


async def scenario(m: Any, report: dict[str, object]) -> None:
    engine = m.engine
    base, user_cls, order_cls = m.Base, m.User, m.Order
    async with engine.begin() as conn:
        await conn.run_sync(base.metadata.create_all)
    async with m.async_session() as session:
        session.add(user_cls(id=1, email="ada@example.com", name="Ada"))
        session.add(order_cls(id=100, user_id=1, total=10.0))
        await session.commit()
    # A task of its own: a context variable its main() sets stays there, as it would in the
    # dispatching process, and never reaches the worker below.
    await asyncio.create_task(m.main())
    async with m.async_session() as session:
        await session.execute(update(user_cls).values(email="fresh@example.com", name="Ada Fresh"))
        await session.execute(update(order_cls).values(total=42.5))
        await session.commit()
    memory = MemoryDriver(namespace="guides")
    queues = sorted({m.queue for m in memory.messages()})
    report["dispatched"] = len(memory.messages())
    worker = Worker(
        memory,
        queues=queues,
        burst=True,
        install_signal_handlers=False,
        allowed_roots=[str(Path(m.__file__).parent)],
    )
    # Nothing is set up for the worker: a class-based example's ``session_var`` holds no
    # value here, as in an ``asynctasq worker`` process (its ``main()`` set it elsewhere).
    await worker.run()
    report["succeeded"] = worker.stats.succeeded
    report["dead"] = [[d.failure.exception_type, d.failure.message] for d in memory.dead_letters()]
    await engine.dispose()


def main() -> None:
    directory, name, report_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    sys.path.insert(0, str(directory))
    module = importlib.import_module(name)
    report: dict[str, object] = {}
    asyncio.run(scenario(module, report))
    report_path.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
