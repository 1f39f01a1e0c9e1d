"""One SQLite connection owned by one dedicated thread.

sqlite3 calls block (disk I/O, waiting for another process's write lock), so they never run
on the event loop thread. Each driver owns one `SerialThread`: the connection is created,
used and closed on that thread, calls run in submission order, and an operation is one hop
to the thread however many statements it runs.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from asynctasq_sqlite._group_commit import run_grouped
from asynctasq_sqlite._thread import SerialThread
from asynctasq_sqlite.errors import SqliteDriverError
from asynctasq_sqlite.schema import ensure_schema

P = ParamSpec("P")
T = TypeVar("T")

SYNCHRONOUS_MODES = frozenset({"off", "normal", "full", "extra"})

_HINTS = {
    "SQLITE_CANTOPEN": " (does the directory exist, and may this process write to it?)",
    "SQLITE_READONLY": " (the file or its directory is read-only for this process)",
}


def _require_json(conn: sqlite3.Connection, path: str) -> None:
    """Dead-letter filters bind task ids as one JSON array (``json_each``)."""
    try:
        conn.execute("SELECT json_valid('[]')").fetchone()
    except sqlite3.OperationalError as exc:
        raise SqliteDriverError(
            f"cannot open queue database {path!r}: this Python's SQLite "
            f"{sqlite3.sqlite_version} lacks the JSON functions ({exc}); asynctasq-sqlite needs "
            "SQLite >= 3.38 or a build with JSON1"
        ) from exc


_inherited: list[SqliteConnection] = []


class SqliteConnection:
    """A connection to the queue database and the thread that owns it.

    Args:
        path: Database file path (absolute).
        busy_timeout: Seconds to wait for another process's write lock before failing.
        synchronous: ``PRAGMA synchronous`` value (``off``, ``normal``, ``full``, ``extra``).
        migrate: Create or upgrade the schema when opening; False: only check it is current.
    """

    def __init__(
        self, path: str, *, busy_timeout: float, synchronous: str, migrate: bool = True
    ) -> None:
        self.path = path
        self._migrate = migrate
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._thread = SerialThread(
            name=f"asynctasq-sqlite {path}", run_batch=lambda jobs: run_grouped(self._conn, jobs)
        )
        self._conn: sqlite3.Connection | None = None
        self.applied: list[int] = []
        """Schema versions this connection applied when it opened."""

    async def open(self) -> None:
        """Open the file, switch it to WAL, create or check the schema.

        Raises:
            SqliteDriverError: The file cannot be used; the message names it and says why.
        """
        try:
            await self._thread.call(self._open)
        except BaseException:
            self._thread.stop()
            raise

    def _open(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            _require_json(conn, self.path)
            mode = _switch_to_wal(conn, self._busy_timeout)
            if mode.lower() != "wal":
                raise SqliteDriverError(
                    f"cannot open queue database {self.path!r}: WAL journal mode is not "
                    f"available (got {mode!r}); use a local file system"
                )
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            # After a burst, truncate the WAL back to this size at the next checkpoint
            # instead of keeping a file as large as the burst.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            self.applied = ensure_schema(conn, migrate=self._migrate)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            if isinstance(exc, SqliteDriverError) and self.path not in str(exc):
                raise SqliteDriverError(f"cannot open queue database {self.path!r}: {exc}") from exc
            raise
        self._conn = conn

    def _error(self, exc: sqlite3.Error) -> SqliteDriverError:
        hint = _HINTS.get(getattr(exc, "sqlite_errorname", ""), "")
        return SqliteDriverError(f"cannot open queue database {self.path!r}: {exc}{hint}")

    async def read(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `fn(connection, *args, **kwargs)` on the connection's thread, on its own."""
        return await self._thread.call(functools.partial(self._call, fn, *args, **kwargs))

    async def write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run the write operation `fn(connection, ...)`, maybe group-committed.

        `fn` must do its writes inside `asynctasq_sqlite._transaction.immediate`.
        """
        return await self._thread.call(
            functools.partial(self._call, fn, *args, **kwargs), groupable=True
        )

    def submit_write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], object],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None:
        """Queue a write without waiting for it (e.g. cleanup on cancel)."""
        self._thread.submit(functools.partial(self._call, fn, *args, **kwargs), groupable=True)

    def _call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        conn = self._conn
        if conn is None:
            raise SqliteDriverError(f"queue database {self.path!r} is closed")
        return fn(conn, *args, **kwargs)

    def abandon_after_fork(self) -> None:
        """In a forked child: drop this connection without touching it.

        The thread did not survive the fork, and SQLite forbids using (or closing) a
        connection inherited across ``fork()``; it is kept referenced so it is never
        finalized here.
        """
        _inherited.append(self)

    async def close(self) -> None:
        """Close the connection once queued calls have run, then stop the thread."""
        try:
            await self._thread.call(self._close)
        finally:
            self._thread.stop()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """``PRAGMA journal_mode = WAL``, tried again while another connection holds the lock
    (up to `busy_timeout` seconds). SQLite answers "database is locked" at once, without
    its busy handler, when several processes open a new file together and one of them is
    switching it."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return str(mode)
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


__all__ = ["SYNCHRONOUS_MODES", "SqliteConnection"]
