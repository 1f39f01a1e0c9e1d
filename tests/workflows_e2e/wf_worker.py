"""A worker process of the workflow end-to-end tests:
``python wf_worker.py <driver> <json> <kill point>``.

The kill point makes this worker SIGKILL itself once (the first worker to get there, of all
of them: a marker file) while it finishes the step before step ``$WF_KILL_STEP``:

* ``before``: the step's body ran, nothing after it is queued;
* ``between``: the next step's claim is taken, its message not queued;
* ``after``: the next step is queued, the finished step not acknowledged;
* ``none``: never.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from wf_e2e_tasks import QUEUE

from asynctasq.config import set_global_config
from asynctasq.worker import Worker
from asynctasq.workflows import queueing, runner, spec

KILL_STEP = int(os.environ.get("WF_KILL_STEP", "1"))


async def _die_once() -> None:
    try:
        os.close(os.open(Path(os.environ["WF_RECORDS"]) / "killed", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return
    # Acks of earlier steps are sent in the background: let them land, so that only the
    # step being finished is left unacknowledged.
    await asyncio.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str) -> None:
    if point == "before":
        advance = runner.advance

        async def advance_then_die(worker: Any, job: Any, result: Any) -> None:
            if spec.parse_header(job.headers[spec.HEADER])[1] == KILL_STEP - 1:
                await _die_once()
            await advance(worker, job, result)

        runner.advance = advance_then_die  # type: ignore[assignment]
    elif point == "between":
        take = queueing._take

        async def take_then_die(store: Any, workflow_id: str, index: int, ttl: float) -> Any:
            token = await take(store, workflow_id, index, ttl)
            if index == KILL_STEP:
                await _die_once()
            return token

        queueing._take = take_then_die  # type: ignore[assignment]
    elif point == "after":
        enqueue = runner.enqueue_steps

        async def enqueue_then_die(store: Any, workflow_id: str, plan: Any, steps: Any) -> int:
            queued = await enqueue(store, workflow_id, plan, steps)
            if steps[0][0] == KILL_STEP:
                await _die_once()
            return queued

        runner.enqueue_steps = enqueue_then_die  # type: ignore[assignment]


if __name__ == "__main__":
    name, section, point = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    _arm(point)
    set_global_config(driver=name, **{name: section})
    worker = Worker(queues=[QUEUE], concurrency=4, imports=["wf_e2e_tasks"], poll_wait=0.2)
    asyncio.run(worker.run())
