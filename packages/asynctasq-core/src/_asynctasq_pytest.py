"""AsyncTasQ's pytest plugin: fixtures for code that dispatches tasks (registered through
the ``pytest11`` entry point of asynctasq-core).

The plugin only defines fixtures: it changes nothing for a test that does not ask for one.
It is a top-level module, not part of the ``asynctasq`` package, so that loading it imports
nothing of AsyncTasQ: a suite that never uses the fixtures neither pays for that import nor
fails at start-up if it breaks (as Hypothesis does with ``_hypothesis_pytestplugin``).

* ``asynctasq_queues``: dispatch goes to fresh in-memory queues for the test; run them with
  ``await asynctasq_queues.run_until_idle()``, assert with ``assert_dispatched``.
* ``asynctasq_eager``: the same, and ``dispatch()`` runs the task before it returns (retries
  included, without waiting); a task that fails for good raises its error from
  ``dispatch()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from asynctasq.testing.queues import MemoryQueues


@pytest.fixture
def asynctasq_queues() -> Iterator[MemoryQueues]:
    """Fresh in-memory queues for every dispatch of this test (configuration restored
    after)."""
    from asynctasq.testing.queues import memory_queues

    with memory_queues() as queues:
        yield queues


@pytest.fixture
def asynctasq_eager() -> Iterator[MemoryQueues]:
    """Eager mode: ``dispatch()`` runs the task in this process before returning."""
    from asynctasq.testing.queues import memory_queues

    with memory_queues(eager=True) as queues:
        yield queues
