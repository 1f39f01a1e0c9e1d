"""Runs one Tortoise guide example against a real database, then a worker.

Usage: python harness.py DIR MODULE DB_URL REPORT.json

Start-up is what the package README tells a worker to do: import a setup module
(``asynctasq_setup``, calling ``init_on_first_use``) and the task module. The dispatching
side initialises Tortoise itself, creates the tables and the rows ``main()`` fetches, runs
``main()``, changes the rows and closes. The worker then runs in a context with no Tortoise
state: the first model it decodes initialises Tortoise from the setup module's settings.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.context import TortoiseContext

from asynctasq.drivers.memory import MemoryDriver
from asynctasq.worker import Worker


async def dispatch_side(m: Any, db_url: str) -> None:
    async with TortoiseContext() as ctx:
        await ctx.init(db_url=db_url, modules={"models": [m.__name__]})
        await ctx.generate_schemas()
        user = await m.User.create(id=1, email="ada@example.com", name="Ada")
        await m.Post.create(id=10, title="Hello", author=user)
        await m.main()
        await m.User.filter(id=1).update(name="Ada Fresh")
        await m.Post.filter(id=10).update(title="Fresh Title")


async def worker_side(root: Path, report: dict[str, object]) -> None:
    memory = MemoryDriver(namespace="guides")
    report["dispatched"] = len(memory.messages())
    worker = Worker(
        memory,
        queues=sorted({m.queue for m in memory.messages()}),
        burst=True,
        install_signal_handlers=False,
        allowed_roots=[str(root)],
    )
    try:
        await worker.run()
    finally:
        await Tortoise.close_connections()
    report["succeeded"] = worker.stats.succeeded
    report["dead"] = [[d.failure.exception_type, d.failure.message] for d in memory.dead_letters()]


async def scenario(m: Any, root: Path, db_url: str, report: dict[str, object]) -> None:
    await dispatch_side(m, db_url)
    await asyncio.create_task(worker_side(root, report), context=contextvars.Context())


def main() -> None:
    root, name, db_url, report_path = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
    sys.path.insert(0, str(root))
    importlib.import_module("asynctasq_setup")  # = asynctasq worker --import asynctasq_setup
    m = importlib.import_module(name)
    report: dict[str, object] = {}
    asyncio.run(scenario(m, root, db_url, report))
    report_path.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
