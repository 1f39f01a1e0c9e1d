"""Checked by mypy in test_workflow_typing.py: the lines marked with an E comment must be
flagged, no other line may be."""

from __future__ import annotations

from typing import assert_type

from asynctasq import chain, chord, group, task
from asynctasq.core.task import Task
from asynctasq.workflows import Chain, Chord, Group, Step, WorkflowHandle


@task
async def fetch(page: int) -> list[int]:
    return [page]


@task
async def total(values: list[int]) -> int:
    return sum(values)


@task
def describe(value: int, unit: str = "") -> str:
    return f"{value}{unit}"


class Report(Task[bytes]):
    async def handle(self) -> bytes:
        return b""


async def usage() -> None:
    assert_type(describe.step(unit="x"), Step[str])
    assert_type(chain(fetch(1), total), Chain[int])
    assert_type(chain(fetch(1), total, describe.step(unit="x")), Chain[str])
    assert_type(chain(fetch(1), total, Report()), Chain[bytes])
    assert_type(group(fetch(p) for p in range(3)), Group[list[int]])
    assert_type(chord(group(total([p]) for p in range(3)), total), Chord[int])
    handle = await chain(fetch(1), total, describe).dispatch()
    assert_type(handle, WorkflowHandle[str])
    assert_type(await handle.result(), str)
    assert_type(await (await group([fetch(1)]).dispatch()).result(), list[list[int]])
    _number: int = await handle.result()  # E: a chain's result is its last step's
    chain(fetch(1), "total")  # E: not a task
    group([fetch("1")])  # E: wrong argument to a group member
