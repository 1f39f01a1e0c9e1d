"""Tasks of the workflow end-to-end tests: each run appends ``<name> <value>`` to a file of
its worker process under ``$WF_RECORDS``."""

from __future__ import annotations

import os
from pathlib import Path

from asynctasq import task

QUEUE = "wf-e2e"


def _record(name: str, value: object) -> None:
    with open(Path(os.environ["WF_RECORDS"]) / f"{os.getpid()}.log", "a") as out:
        out.write(f"{name} {value}\n")


# A short lease: the step of a killed worker runs again within seconds.
@task(queue=QUEUE, visibility_timeout=3)
async def inc(x: int) -> int:
    _record("inc", x)
    return x + 1


@task(queue=QUEUE, visibility_timeout=3)
async def total(values: list[int]) -> int:
    _record("total", sum(values))
    return sum(values)


@task(queue=QUEUE, visibility_timeout=3, max_attempts=1)
async def fail(x: int) -> int:
    _record("fail", x)
    raise RuntimeError(f"failing at {x}")
