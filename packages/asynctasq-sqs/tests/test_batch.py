"""Batch responses: failed entries are resent or raised, never dropped (no server needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from asynctasq_sqs import BatchEntryError
from asynctasq_sqs._batch import run_batch

ENTRIES = [{"Id": str(i)} for i in range(4)]


class Replies:
    """Answers batch calls with scripted ``Failed`` lists and records what was sent."""

    def __init__(self, *failed: list[dict[str, Any]]) -> None:
        self.failed = list(failed)
        self.calls: list[list[str]] = []

    async def __call__(self, entries: list[Any]) -> Mapping[str, Any]:
        self.calls.append([e["Id"] for e in entries])
        return {"Failed": self.failed.pop(0) if self.failed else []}


def _fail(id_: str, code: str = "InternalError", sender: bool = False) -> dict[str, Any]:
    return {"Id": id_, "Code": code, "Message": "no", "SenderFault": sender}


async def test_server_side_failures_are_resent_until_they_succeed() -> None:
    replies = Replies([_fail("1"), _fail("3")], [_fail("3")])
    assert await run_batch("SendMessageBatch", replies, ENTRIES) == []
    assert replies.calls == [["0", "1", "2", "3"], ["1", "3"], ["3"]]


async def test_sender_faults_are_raised_at_once() -> None:
    replies = Replies([_fail("2", "InvalidParameterValue", sender=True)])
    with pytest.raises(BatchEntryError, match="InvalidParameterValue") as info:
        await run_batch("SendMessageBatch", replies, ENTRIES)
    assert [f["Id"] for f in info.value.failures] == ["2"]
    assert len(replies.calls) == 1


async def test_failures_that_keep_coming_are_raised() -> None:
    replies = Replies(*[[_fail("0")] for _ in range(10)])
    with pytest.raises(BatchEntryError, match="DeleteMessageBatch: 1 entry failed"):
        await run_batch("DeleteMessageBatch", replies, ENTRIES)
    assert len(replies.calls) == 4


async def test_accepted_codes_are_returned_not_raised() -> None:
    replies = Replies([_fail("1", "ReceiptHandleIsInvalid", sender=True)])
    accepted = await run_batch(
        "DeleteMessageBatch", replies, ENTRIES, accept={"ReceiptHandleIsInvalid"}
    )
    assert [f["Id"] for f in accepted] == ["1"]
