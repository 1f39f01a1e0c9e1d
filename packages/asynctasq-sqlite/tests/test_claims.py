"""Claims on SQLite beyond the conformance suite: sweeping, forged rows, other processes."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

from asynctasq_sqlite import SqliteDriver
from asynctasq_sqlite._claims import MAX_HOLDER_BYTES
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


async def test_forged_rows_are_read_bounded_and_leniently(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    later = time.time() + 3600
    _insert(
        db_path,
        [
            ("huge", "x" * 1_000_000, later),
            ("blob", b"\xff\xfe not utf-8", later),
            ("number", 42, later),
        ],
    )
    assert await sqlite_driver.read_claim("huge") == "x" * MAX_HOLDER_BYTES
    assert await sqlite_driver.claim("huge", "w1", 60) == "x" * MAX_HOLDER_BYTES
    assert await sqlite_driver.read_claim("blob") == "\ufffd\ufffd not utf-8"
    assert await sqlite_driver.claim("blob", "w1", 60) == "\ufffd\ufffd not utf-8"
    assert await sqlite_driver.claim("number", "w1", 60, replace="41") == "42"
    assert await sqlite_driver.release_claim("blob", "w1") is False


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
