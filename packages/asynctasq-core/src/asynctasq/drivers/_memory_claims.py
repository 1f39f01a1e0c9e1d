"""The in-memory driver's `ClaimStore`: named claims in a dict, expiring on a monotonic clock.

Each call runs without awaiting, so on one event loop it is atomic by construction. Expired
claims are dropped when met, and swept in bulk once the dict has grown past twice the size
of the last sweep, so a process that makes many short claims does not keep them all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from asynctasq.drivers.claims import check_claim, check_claim_holder, check_claim_key


@dataclass(slots=True)
class ClaimState:
    """The claims of one namespace: key -> (holder, expiry on `time.monotonic`)."""

    claims: dict[str, tuple[str, float]] = field(default_factory=dict)
    sweep_at: int = 1024  # the size that triggers the next bulk sweep


class MemoryClaims:
    """`ClaimStore` in a dict (one process)."""

    _c: ClaimState

    def _holder(self, key: str, now: float) -> str | None:
        kept = self._c.claims.get(key)
        if kept is None:
            return None
        if kept[1] <= now:
            del self._c.claims[key]
            return None
        return kept[0]

    def _sweep(self, now: float) -> None:
        claims = self._c.claims
        if len(claims) < self._c.sweep_at:
            return
        for key in [k for k, (_, until) in claims.items() if until <= now]:
            del claims[key]
        self._c.sweep_at = max(2 * len(claims), 1024)

    async def claim(
        self, key: str, holder: str, ttl: float, *, replace: str | None = None
    ) -> str | None:
        """Make `holder` hold `key` for `ttl` seconds if it is free or held by `replace`;
        None when taken, else the current holder."""
        seconds = check_claim(key, holder, ttl, replace)
        now = time.monotonic()
        current = self._holder(key, now)
        if current is not None and (replace is None or current != replace):
            return current
        self._sweep(now)
        self._c.claims[key] = (holder, now + seconds)
        return None

    async def release_claim(self, key: str, holder: str) -> bool:
        """End the claim on `key` if `holder` holds it; whether it did."""
        check_claim_key(key)
        check_claim_holder(holder)
        if self._holder(key, time.monotonic()) != holder:
            return False
        del self._c.claims[key]
        return True

    async def read_claim(self, key: str) -> str | None:
        """The current holder of `key`, or None."""
        check_claim_key(key)
        return self._holder(key, time.monotonic())


def claim_state(shared: dict[str, Any], namespace: str | None) -> ClaimState:
    """The claim state for `namespace` (a fresh one when None)."""
    if namespace is None:
        return ClaimState()
    state = shared.setdefault(namespace, ClaimState())
    assert isinstance(state, ClaimState)
    return state
