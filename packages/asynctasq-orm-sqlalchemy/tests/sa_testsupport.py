"""Helpers shared by the test modules (a unique name: every package's tests share sys.path)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import make_url

from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

PG_DSN = os.environ.get("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_DSN = os.environ.get("ASYNCTASQ_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")


@dataclass(frozen=True)
class Backend:
    """One server through one SQLAlchemy driver."""

    name: str
    async_url: str
    """The async URL of the same server (tables are managed through it)."""
    url: str
    """The URL the session factory under test uses."""

    @property
    def is_async(self) -> bool:
        return bool(make_url(self.url).get_dialect().is_async)


def _url(dsn: str, driver: str) -> str:
    return make_url(dsn).set(drivername=driver).render_as_string(hide_password=False)


BACKENDS = {
    "pg-asyncpg": Backend(
        "pg-asyncpg", _url(PG_DSN, "postgresql+asyncpg"), _url(PG_DSN, "postgresql+asyncpg")
    ),
    "pg-psycopg": Backend(
        "pg-psycopg", _url(PG_DSN, "postgresql+asyncpg"), _url(PG_DSN, "postgresql+psycopg")
    ),
    "mysql-aiomysql": Backend(
        "mysql-aiomysql", _url(MYSQL_DSN, "mysql+aiomysql"), _url(MYSQL_DSN, "mysql+aiomysql")
    ),
    "mysql-pymysql": Backend(
        "mysql-pymysql", _url(MYSQL_DSN, "mysql+aiomysql"), _url(MYSQL_DSN, "mysql+pymysql")
    ),
}


async def run_worker(memory: MemoryDriver, **kwargs: Any) -> Worker:
    """A burst worker over the ``sa`` queue; returns it once the queue is empty."""
    worker = Worker(memory, queues=["sa"], burst=True, install_signal_handlers=False, **kwargs)
    await worker.run()
    return worker


def payloads(memory: MemoryDriver) -> list[dict[str, Any]]:
    """The envelopes waiting in the memory driver."""
    return [orjson.loads(r.payload) for r in memory.messages()]
