"""`LostCopies`: the broker's copy of a lost delivery is recognised by its id and its count,
one more than the lost one's, and only for a while; later messages with that id are not."""

from __future__ import annotations

import pytest

from asynctasq_rabbitmq import copies
from asynctasq_rabbitmq.copies import LostCopies


def test_the_copy_is_one_delivery_further() -> None:
    lost: LostCopies[str] = LostCopies()
    lost.remember("t", 2, "acked")
    assert lost.peek("t", 3) == (True, "acked")
    assert lost.peek("t", 0)[0] is False  # a retried dead letter starts from zero
    assert lost.peek("t", 4)[0] is False  # another worker's retry of the copy
    assert lost.peek("other", 3)[0] is False
    lost.forget("t")
    assert lost.peek("t", 3)[0] is False
    assert not lost.pending


def test_a_copy_that_went_elsewhere_is_forgotten_after_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(copies.time, "monotonic", lambda: now[0])
    lost: LostCopies[None] = LostCopies()
    lost.remember("t", 0, None)
    now[0] += copies.WINDOW + 1
    assert lost.peek("t", 1) == (False, None)
    assert not lost.pending


def test_bounded_the_oldest_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copies, "MAX_REMEMBERED", 3)
    lost: LostCopies[int] = LostCopies()
    for n in range(5):
        lost.remember(f"t{n}", 0, n)
    assert [lost.peek(f"t{n}", 1)[0] for n in range(5)] == [False, False, True, True, True]
