"""Conformance tests of `ClaimStore`, part of `DriverConformance`; they skip for a driver
without the capability.

The race tests run many claimers at once: as concurrent tasks on the fixture's driver, and
on the extra drivers `claim_peer` opens (a subclass overrides it so the race also crosses
driver instances and their connections).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

import pytest

from asynctasq.drivers.base import ClaimStore, Driver
from asynctasq.drivers.claims import MAX_CLAIM_HOLDER_LENGTH, MAX_CLAIM_KEY_LENGTH

RACERS = 32
"""Claimers of one key in the race tests."""

UNUSUAL_KEYS = (
    "unicode:ключ:🔑:日本",
    "quotes:'\"`",
    "percent:100%",
    "percent:100_",
    "under:a_b",
    "under:a%b",
    "back:a\\b",
    "back:a\\\\b",
    "back:a\\",
    "case:K",
    "case:k",
    "space:k",
    "space:k ",
    " space:k",
    "lines:a\nb\r\tc",
    "glob:*?[a-z]",
    "tag:{x}:{",
    "sql:'); DROP TABLE x; --",
    'json:{"a": [1]}',
    "zero-width:a\u200bb",
    "combining:e\u0301",
    "combining:\u00e9",
)
"""Keys that differ only in what a careless store folds, escapes or pattern-matches: each
must be its own claim (no LIKE, glob, case, padding or Unicode normalisation)."""


def _key(label: str = "k") -> str:
    return f"conf:{label}:{uuid.uuid4().hex}"


class ClaimsConformance:
    """The `ClaimStore` contract (mixed into `DriverConformance`)."""

    delay_slack: ClassVar[float] = 0.5

    @staticmethod
    def _claims(driver: Driver) -> ClaimStore:
        if not isinstance(driver, ClaimStore):
            pytest.skip(f"{type(driver).__name__} keeps no claims")
        return driver

    async def claim_peer(self, driver: Driver) -> Driver | None:
        """Another connected driver on the same claims as `driver`, with connections of its
        own, for the race tests (which close it); None (the default) when the fixture
        cannot make one, and the race runs as concurrent tasks on `driver` alone."""
        return None

    async def _racers(
        self, driver: Driver, peers: int = 3
    ) -> tuple[list[ClaimStore], list[Driver]]:
        """`RACERS` stores (round-robin over `driver` and its peers) and the peers to close."""
        opened: list[Driver] = []
        for _ in range(peers):
            peer = await self.claim_peer(driver)
            if peer is None:
                break
            opened.append(peer)
        pool = [self._claims(driver), *(self._claims(p) for p in opened)]
        return [pool[n % len(pool)] for n in range(RACERS)], opened

    # -- take, refuse, replace, release ------------------------------------------------------
    async def test_a_free_key_is_claimed_and_a_held_one_refused(self, driver: Driver) -> None:
        store = self._claims(driver)
        key = _key()
        assert await store.read_claim(key) is None
        assert await store.claim(key, "a", 60) is None
        assert await store.read_claim(key) == "a"
        assert await store.claim(key, "b", 60) == "a"  # refused: the holder is returned
        assert await store.claim(key, "a", 60) == "a"  # even to itself, without replace
        assert await store.read_claim(key) == "a"
        assert await store.read_claim(_key()) is None  # other keys are untouched

    async def test_replace_is_a_compare_and_set(self, driver: Driver) -> None:
        store = self._claims(driver)
        key = _key("last")
        assert await store.claim(key, "tick-1", 60, replace="tick-0") is None  # free: taken
        assert await store.claim(key, "tick-2", 60, replace="tick-0") == "tick-1"  # stale
        assert await store.claim(key, "tick-2", 60, replace="tick-") == "tick-1"  # no prefix
        assert await store.claim(key, "tick-2", 60, replace="TICK-1") == "tick-1"  # exact
        assert await store.read_claim(key) == "tick-1"
        assert await store.claim(key, "tick-2", 60, replace="tick-1") is None
        assert await store.read_claim(key) == "tick-2"
        assert await store.claim(key, "tick-2", 60, replace="tick-2") is None  # renewal
        assert await store.read_claim(key) == "tick-2"

    async def test_only_the_holder_releases(self, driver: Driver) -> None:
        store = self._claims(driver)
        key = _key()
        assert await store.release_claim(key, "a") is False  # nothing to release
        assert await store.claim(key, "a", 60) is None
        assert await store.release_claim(key, "b") is False
        assert await store.release_claim(key, "A") is False
        assert await store.read_claim(key) == "a"
        assert await store.release_claim(key, "a") is True
        assert await store.read_claim(key) is None
        assert await store.release_claim(key, "a") is False  # once
        assert await store.claim(key, "b", 60) is None  # free again

    # -- expiry ------------------------------------------------------------------------------
    async def test_a_claim_expires(self, driver: Driver) -> None:
        store = self._claims(driver)
        key, long_key = _key(), _key()
        assert await store.claim(key, "a", 1) is None
        assert await store.claim(long_key, "a", 60) is None
        assert await store.claim(key, "b", 60) == "a"
        await asyncio.sleep(1.0 + self.delay_slack + 0.2)
        assert await store.read_claim(key) is None
        assert await store.release_claim(key, "a") is False  # an expired claim is not held
        assert await store.read_claim(long_key) == "a"  # only the short one expired
        assert await store.claim(key, "b", 60) is None
        assert await store.read_claim(key) == "b"

    async def test_an_expired_claim_is_not_replaced_by_its_old_holder_only(
        self, driver: Driver
    ) -> None:
        store = self._claims(driver)
        key = _key()
        assert await store.claim(key, "a", 1) is None
        await asyncio.sleep(1.0 + self.delay_slack + 0.2)
        # expired: free for anyone, whatever `replace` says
        assert await store.claim(key, "c", 60, replace="zzz") is None
        assert await store.read_claim(key) == "c"

    async def test_renewing_with_replace_extends_the_ttl(self, driver: Driver) -> None:
        store = self._claims(driver)
        key = _key()
        assert await store.claim(key, "a", 1) is None
        assert await store.claim(key, "a", 60, replace="a") is None
        await asyncio.sleep(1.0 + self.delay_slack + 0.2)
        assert await store.read_claim(key) == "a"

    # -- races -------------------------------------------------------------------------------
    async def test_many_claimers_of_one_key_one_wins(self, driver: Driver) -> None:
        racers, peers = await self._racers(driver)
        try:
            for _ in range(3):  # a few rounds: a lucky interleaving must not pass the test
                key = _key("race")
                holders = [f"w{n}" for n in range(RACERS)]
                replies = await asyncio.gather(
                    *(store.claim(key, h, 60) for store, h in zip(racers, holders, strict=True))
                )
                winners = [h for h, reply in zip(holders, replies, strict=True) if reply is None]
                assert len(winners) == 1, replies
                assert set(replies) == {None, winners[0]}  # every loser is told who won
                assert await racers[0].read_claim(key) == winners[0]
        finally:
            for peer in peers:
                await peer.close()

    async def test_many_replacers_of_one_holder_one_wins(self, driver: Driver) -> None:
        racers, peers = await self._racers(driver)
        try:
            key = _key("last")
            assert await racers[0].claim(key, "tick-0", 60) is None
            holders = [f"tick-1-by-w{n}" for n in range(RACERS)]
            replies = await asyncio.gather(
                *(
                    store.claim(key, h, 60, replace="tick-0")
                    for store, h in zip(racers, holders, strict=True)
                )
            )
            winners = [h for h, reply in zip(holders, replies, strict=True) if reply is None]
            assert len(winners) == 1, replies
            assert set(replies) == {None, winners[0]}
            assert await racers[-1].read_claim(key) == winners[0]
        finally:
            for peer in peers:
                await peer.close()

    async def test_many_releasers_one_succeeds(self, driver: Driver) -> None:
        racers, peers = await self._racers(driver)
        try:
            key = _key()
            assert await racers[0].claim(key, "a", 60) is None
            replies = await asyncio.gather(*(store.release_claim(key, "a") for store in racers))
            assert replies.count(True) == 1
            assert await racers[0].read_claim(key) is None
        finally:
            for peer in peers:
                await peer.close()

    # -- unusual and invalid keys ------------------------------------------------------------
    async def test_unusual_keys_and_holders_are_distinct_and_exact(self, driver: Driver) -> None:
        store = self._claims(driver)
        run = uuid.uuid4().hex
        keys = [f"{run}:{k}" for k in UNUSUAL_KEYS]
        holders = [f"{k}!holder'\"\\%_{n}" for n, k in enumerate(UNUSUAL_KEYS)]
        for key, holder in zip(keys, holders, strict=True):
            assert await store.claim(key, holder, 60) is None, key
        for key, holder in zip(keys, holders, strict=True):
            assert await store.read_claim(key) == holder, key
            assert await store.claim(key, "other", 60) == holder, key
        # a pattern-looking key never reaches another: released one by one, exactly
        for n, (key, holder) in enumerate(zip(keys, holders, strict=True)):
            assert await store.release_claim(key, holder) is True, key
            assert [await store.read_claim(k) for k in keys[n + 1 :]] == holders[n + 1 :]

    async def test_the_longest_key_and_holder_round_trip(self, driver: Driver) -> None:
        store = self._claims(driver)
        prefix = f"{uuid.uuid4().hex}:"
        # four UTF-8 bytes a character: the widest a column sized from the limit must hold
        key = prefix + "🔑" * (MAX_CLAIM_KEY_LENGTH - len(prefix))
        holder = "ä" + "😀" * (MAX_CLAIM_HOLDER_LENGTH - 1)
        assert await store.claim(key, holder, 60) is None
        assert await store.read_claim(key) == holder
        other = key[:-1] + "🔒"
        assert await store.claim(other, "x", 60) is None  # differs only in its last character
        assert await store.release_claim(key, holder) is True
        assert await store.read_claim(other) == "x"

    async def test_invalid_arguments_are_refused_before_any_change(self, driver: Driver) -> None:
        store = self._claims(driver)
        key = _key()
        too_long_key = "k" * (MAX_CLAIM_KEY_LENGTH + 1)
        too_long_holder = "h" * (MAX_CLAIM_HOLDER_LENGTH + 1)
        with pytest.raises(ValueError, match=str(MAX_CLAIM_KEY_LENGTH)):
            await store.claim(too_long_key, "a", 60)
        with pytest.raises(ValueError, match=str(MAX_CLAIM_HOLDER_LENGTH)):
            await store.claim(key, too_long_holder, 60)
        with pytest.raises(ValueError, match=str(MAX_CLAIM_HOLDER_LENGTH)):
            await store.claim(key, "a", 60, replace=too_long_holder)
        with pytest.raises(ValueError, match=str(MAX_CLAIM_KEY_LENGTH)):
            await store.read_claim(too_long_key)
        with pytest.raises(ValueError, match=str(MAX_CLAIM_KEY_LENGTH)):
            await store.release_claim(too_long_key, "a")
        for bad in ("a\x00b", "\x00", "", "lone \ud800 surrogate"):
            with pytest.raises(ValueError, match="a claim's"):
                await store.claim(bad, "a", 60)
            with pytest.raises(ValueError, match="a claim's"):
                await store.claim(key, bad, 60)
            with pytest.raises(ValueError, match="a claim's"):
                await store.read_claim(bad)
            with pytest.raises(ValueError, match="a claim's"):
                await store.release_claim(key, bad)
        for ttl in (0, -1, 0.0, float("nan"), float("inf"), -float("inf")):
            with pytest.raises(ValueError, match="ttl"):
                await store.claim(key, "a", ttl)
        assert await store.read_claim(key) is None  # none of them took it
        assert await store.claim(key, "a", 60) is None
