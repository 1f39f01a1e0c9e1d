"""How long a failed task waits before its next run."""

from __future__ import annotations

import math
import random

from asynctasq.core.envelope import Envelope


def retry_delay(envelope: Envelope, runs_done: int) -> float:
    """Seconds to wait after the `runs_done`-th failed run.

    ``fixed``: the task's delay every time. ``exponential``: the delay doubles with each run
    (``delay * 2**(runs_done - 1)``), capped at the maximum, with "equal jitter" (a random
    value in the upper half) so that tasks failing together do not retry together.
    """
    base = envelope.retry_delay
    if envelope.retry_strategy == "fixed":
        return base
    try:
        grown = math.ldexp(base, max(runs_done - 1, 0))
    except OverflowError:  # a message may ask for 100 000 runs: 2**99_999 is past any cap
        grown = math.inf
    delay = min(grown, envelope.retry_max_delay)
    if envelope.retry_jitter and delay > 0:
        delay = delay / 2 + random.uniform(0, delay / 2)
    return delay
