"""The real servers the cross-package tests run on, and a private corner of each per test.

A test asks `require` for a server's URL (skip when it does not answer; fail under ``CI``),
builds its own driver section with `section` (a Redis prefix, a PostgreSQL schema, MySQL
tables or an SQLite file, named from a short tag and a uuid, so two copies of the suite can
run at once on one host), and installs it with `installed` (async tests) or `configured_as`
(sync tests). Both put back the configuration the session had, and `installed` drops what
the section created.

Tests import it as ``tests.servers`` (pytest's importlib mode names the test modules
``tests.test_...``, in the main process and in xdist's workers alike).
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest

from asynctasq.config import configured, reset_config, set_global_config, use_config
from asynctasq.drivers.base import Driver
from asynctasq.drivers.connections import get_driver

URLS = {
    "redis": os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "postgres": os.environ.get(
        "ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get("ASYNCTASQ_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test"),
}
"""Each server driver's URL (``ASYNCTASQ_TEST_*``, loopback by default)."""


def reachable(url: str) -> bool:
    """Whether something accepts TCP connections at `url`'s host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return True
    except OSError:
        return False


def require(name: str) -> str:
    """`name`'s URL; skips the test when nothing answers there (fails it under ``CI``)."""
    url = URLS[name]
    if not reachable(url):
        reason = f"{name} is not reachable at {url}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
        pytest.skip(reason)
    return url


@contextmanager
def imported(directory: Path, module: str) -> Iterator[ModuleType]:
    """`module`, imported from `directory` (a test's task code, which its worker processes
    import the same way); `directory` is on ``sys.path`` for the duration."""
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(module)
    finally:
        sys.path.remove(str(directory))


@dataclass(frozen=True, slots=True)
class Section:
    """One test's driver section: `values` go under the driver's name in the configuration;
    everything they create is named from `short` and `tag`, so `drop` finds it."""

    driver: str
    values: dict[str, Any]
    short: str
    tag: str

    def settings(self, **more: Any) -> dict[str, Any]:
        """The configuration that selects this section (plus `more` settings)."""
        return {"driver": self.driver, self.driver: self.values, **more}


def section(name: str, short: str, tmp_path: Path) -> Section:
    """A fresh section of driver `name` (redis, postgres, mysql or sqlite) named from
    `short`; server drivers need their server (see `require`), SQLite a file in `tmp_path`."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any]
    if name == "sqlite":
        values = {"path": str(tmp_path / "queue.db")}
    elif name == "redis":
        values = {"url": require(name), "prefix": f"{short}-{tag}"}
    elif name == "postgres":
        values = {"dsn": require(name), "schema": f"{short}_{tag}", "auto_migrate": True}
    elif name == "mysql":
        values = {
            "dsn": require(name),
            "queue_table": f"{short}_{tag}_q",
            "dead_letter_table": f"{short}_{tag}_d",
        }
    else:
        raise ValueError(f"no test section for driver {name!r}; known: {', '.join(URLS)}, sqlite")
    return Section(name, values, short, tag)


@contextmanager
def configured_as(settings: dict[str, Any], *, fresh: bool = False) -> Iterator[None]:
    """`settings` in effect for the duration (on the defaults when `fresh`, not on what was
    configured); then exactly the configuration the session had."""
    saved = configured()
    if fresh:
        reset_config()
    set_global_config(**settings)
    try:
        yield
    finally:
        use_config(saved)


@asynccontextmanager
async def installed(where: Section, **more: Any) -> AsyncIterator[Driver]:
    """`where` installed as the configuration (with `more` settings) and its driver, schema
    created; afterwards the driver is closed, the configuration put back and `where`
    dropped."""
    try:
        with configured_as(where.settings(**more)):
            try:
                driver = await get_driver()
                if where.driver == "postgres":
                    await driver.init_schema()  # type: ignore[attr-defined]
                yield driver
            finally:
                await (await get_driver()).close()
    finally:
        await drop(where)


async def drop(where: Section) -> None:
    """Delete what `where` created on its server (an SQLite file goes with its tmp_path)."""
    if where.driver == "redis":
        from redis.asyncio import Redis

        r = Redis.from_url(where.values["url"])
        try:
            match = f"*{where.values['prefix']}*"
            keys = [k async for k in r.scan_iter(match=match, count=1000)]
            if keys:
                await r.delete(*keys)
        finally:
            await r.aclose()
    elif where.driver == "postgres":
        import asyncpg

        conn = await asyncpg.connect(where.values["dsn"])
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{where.values["schema"]}" CASCADE')
        finally:
            await conn.close()
    elif where.driver == "mysql":
        import aiomysql

        from asynctasq_mysql import parse_dsn

        conn = await aiomysql.connect(**parse_dsn(where.values["dsn"]).connect_kwargs())
        try:
            async with conn.cursor() as cur:
                await cur.execute("SET SESSION sql_notes = 0")
                await cur.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name LIKE %s",
                    (f"{where.short}\\_{where.tag}\\_%",),
                )
                for (table,) in await cur.fetchall():
                    await cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        finally:
            conn.close()
