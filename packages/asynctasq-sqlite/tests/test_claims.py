"""Claims on SQLite beyond the conformance suite: sweeping, forged rows, other processes."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from asynctasq.drivers.claims import MAX_CLAIM_HOLDER_LENGTH, MAX_CLAIM_TTL
from asynctasq_sqlite import SqliteDriver
from asynctasq_sqlite.sql import TRIM_BATCH


def _rows(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        (count,) = conn.execute("SELECT count(*) FROM asynctasq_claims").fetchone()
    return int(count)


def _insert(db_path: Path, rows: list[tuple[object, object, float]]) -> None:
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany("INSERT INTO asynctasq_claims VALUES (?, ?, ?)", rows)
    conn.close()


async def test_expired_claims_are_swept_by_later_claims(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    past, later = time.time() - 1, time.time() + 3600
    _insert(db_path, [(f"old:{n}", "w", past) for n in range(TRIM_BATCH + 100)])
    _insert(db_path, [("live", "w", later)])
    assert await sqlite_driver.claim("new:1", "w", 60) is None  # deletes a batch first
    assert _rows(db_path) == 100 + 2
    assert await sqlite_driver.claim("new:2", "w", 60) is None
    assert _rows(db_path) == 3
    assert await sqlite_driver.release_claim("new:2", "w") is True
    assert _rows(db_path) == 2  # released claims leave no row
    assert await sqlite_driver.read_claim("live") == "w"


@pytest.mark.parametrize(
    ("holder", "expires"),
    [
        ("x" * 1_000_000, 3600.0),
        ("x" * 300, 3600.0),  # more characters than a holder
        (b"\xff\xfe not utf-8", 3600.0),
        (b"a/holder", 3600.0),  # a blob, though UTF-8: no `replace` (text) could name it
        ("a/holder", math.inf),
        ("a/holder", 200 * 366 * 86400.0),
        ("a/holder", "soon"),  # text: greater than any number in SQLite
    ],
)
async def test_a_row_no_driver_writes_is_no_claim(
    sqlite_driver: SqliteDriver, db_path: Path, holder: object, expires: object
) -> None:
    """Whoever can write the file could otherwise hold a limit or a schedule tick for ever
    with a row compare-and-replace can never name, or one that never expires."""
    at = time.time() + expires if isinstance(expires, float) else expires
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO asynctasq_claims VALUES (?, ?, ?)", ("forged", holder, at))
    conn.close()
    assert await sqlite_driver.read_claim("forged") is None
    assert await sqlite_driver.claim("forged", "w1", 60) is None
    assert await sqlite_driver.read_claim("forged") == "w1"
    assert await sqlite_driver.release_claim("forged", "w1") is True


async def test_the_longest_holder_is_a_claim(sqlite_driver: SqliteDriver) -> None:
    longest = "\U0001f600" * MAX_CLAIM_HOLDER_LENGTH
    assert await sqlite_driver.claim("long", longest, MAX_CLAIM_TTL) is None
    assert await sqlite_driver.read_claim("long") == longest
    assert await sqlite_driver.claim("long", "w1", 60) == longest


_CLAIMER = """
import asyncio, sys
from asynctasq_sqlite import SqliteDriver

async def main() -> None:
    driver = SqliteDriver(path=sys.argv[1], busy_timeout=30)
    await driver.connect()
    reply = await driver.claim(sys.argv[2], sys.argv[3], 60)
    print("won" if reply is None else "lost:" + reply)
    await driver.close()

asyncio.run(main())
"""


async def test_claimers_in_other_processes_one_wins(db_path: Path) -> None:
    driver = SqliteDriver(path=str(db_path))
    await driver.init_schema()
    await driver.close()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CLAIMER,
            str(db_path),
            "schedule:s:1",
            f"p{n}",
            stdout=asyncio.subprocess.PIPE,
        )
        for n in range(6)
    ]
    outputs = [(await asyncio.wait_for(p.communicate(), 60))[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    winners = [f"p{n}" for n, out in enumerate(outputs) if out == "won"]
    assert len(winners) == 1, outputs
    assert sorted(outputs) == sorted(["won"] + [f"lost:{winners[0]}"] * 5)
