"""Ack coalescing: a `multiple` ack never covers a tag that is still being worked on."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from asynctasq_rabbitmq.acks import AckBook


def test_a_run_from_the_oldest_unacked_tag_is_one_frame() -> None:
    book = AckBook()
    for tag in range(1, 8):
        book.add(tag)
    assert book.plan([3, 1, 2]) == (3, [])
    assert book.plan([5, 7]) == (0, [5, 7])  # 4 and 6 are still out
    assert book.plan([4]) == (0, [4])
    assert book.plan([6]) == (0, [6])  # 5 and 7 were acked alone; 6 is the only one left
    assert len(book) == 0


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_plans_ack_exactly_the_tags_given(count: int, seed: int) -> None:
    rng = random.Random(seed)
    book = AckBook()
    out: set[int] = set()
    next_tag = 1
    acked: set[int] = set()
    while next_tag <= count or out:
        for _ in range(rng.randint(1, 3)):
            if next_tag <= count:
                book.add(next_tag)
                out.add(next_tag)
                next_tag += 1
        if not out:
            continue
        batch = rng.sample(sorted(out), rng.randint(1, len(out)))
        upto, singles = book.plan(batch)
        covered = {t for t in out if t <= upto} if upto else set()
        assert covered | set(singles) == set(batch)  # nothing still out gets acked
        assert not (covered & set(singles))
        out -= set(batch)
        acked |= set(batch)
    assert acked == set(range(1, count + 1))
    assert len(book) == 0
