"""The FastAPI integration with FastAPI's TestClient: the lifespan, the ``Dispatch``
dependency, dispatch after a SQLAlchemy commit, and a real worker process on Redis running
what the endpoints queued."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette now prefers httpx2 for its test client; httpx (what the workspace has)
    # still works and is what FastAPI's documentation uses.
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

import asynctasq_fastapi.lifespan as lifespan_module
from asynctasq.config import get_config
from asynctasq.testing import MemoryDriver, decode_message, memory_queues
from asynctasq_fastapi import asynctasq_lifespan

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import fastapi_app  # noqa: E402

REDIS_URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

WORKER = textwrap.dedent(
    """
    import asyncio
    import json
    import sys

    from asynctasq import init
    from asynctasq.worker import Worker

    import fastapi_app  # noqa: F401 - the task's module

    init(json.loads(sys.argv[1]))
    worker = Worker(queues=["signups"], burst=True, install_signal_handlers=False)
    asyncio.run(worker.run())
    print(json.dumps({"succeeded": worker.stats.succeeded, "dead": worker.stats.dead_lettered}))
    """
)


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[tuple[dict[str, Any], MemoryDriver]]:
    namespace = f"fastapi-{uuid.uuid4().hex}"
    yield {"driver": "memory", "memory": {"namespace": namespace}}, MemoryDriver(namespace)
    MemoryDriver(namespace).clear()


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"


def addresses(driver: MemoryDriver) -> list[str]:
    return [decode_message(m.payload).args[0] for m in driver.queued("signups")]


def test_the_lifespan_configures_and_closes_the_drivers(
    memory: tuple[dict[str, Any], MemoryDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = memory
    closed: list[bool] = []
    real_close = lifespan_module.close_drivers

    async def spy() -> None:
        closed.append(True)
        await real_close()

    monkeypatch.setattr(lifespan_module, "close_drivers", spy)
    events: list[str] = []

    @asynccontextmanager
    async def inner(app: FastAPI) -> AsyncIterator[None]:
        events.append(f"start with {get_config().driver}")
        yield
        events.append("stop")

    app = FastAPI(lifespan=asynctasq_lifespan(settings, inner=inner))
    with TestClient(app):
        assert get_config().driver_settings("memory") == settings["memory"]
        assert closed == []
    assert events == ["start with memory", "stop"] and closed == [True]


def test_a_bad_setting_stops_the_start_up(tmp_path: Path) -> None:
    app = FastAPI(lifespan=asynctasq_lifespan({"driver": "memory", "no_such": 1}))
    with pytest.raises(Exception, match="no_such"), TestClient(app):
        pass


def test_dispatch_from_an_endpoint(
    memory: tuple[dict[str, Any], MemoryDriver], database: str
) -> None:
    settings, driver = memory
    with TestClient(fastapi_app.create_app(settings, database)) as client:
        response = client.post("/signup", params={"address": "ada@example.com"})
        assert response.status_code == 200
        [message] = driver.queued("signups")
        assert response.json() == {"task_id": message.task_id}
    assert addresses(driver) == ["ada@example.com"]


def test_on_success_queues_only_when_the_endpoint_succeeds(
    memory: tuple[dict[str, Any], MemoryDriver], database: str
) -> None:
    settings, driver = memory
    with TestClient(fastapi_app.create_app(settings, database)) as client:
        refused = client.post("/signup-on-success", params={"address": "no", "fail": True})
        assert refused.status_code == 400
        accepted = client.post("/signup-on-success", params={"address": "yes", "fail": False})
        assert accepted.status_code == 200
    assert addresses(driver) == ["yes"]


def test_test_queues_opened_before_the_lifespan_keep_the_dispatches(database: str) -> None:
    # The lifespan's init() names a real broker; the test queues must still get the task.
    app = fastapi_app.create_app({"driver": "redis", "redis": {"url": REDIS_URL}}, database)
    with memory_queues() as queues, TestClient(app) as client:
        response = client.post("/signup-on-success", params={"address": "ada", "fail": False})
        assert response.status_code == 200
        queues.assert_dispatched(fastapi_app.send_welcome, times=1, args=("ada",))
        assert [m.task_id for m in queues.driver.queued("signups")] != []


def test_a_yield_dependency_of_function_scope_can_take_dispatch(
    memory: tuple[dict[str, Any], MemoryDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, driver = memory
    with TestClient(fastapi_app.create_service_app(settings)) as client:
        assert client.post("/signup", params={"address": "ada"}).status_code == 200
    assert addresses(driver) == ["ada"]

    # Through the service too, the queueing happens before the response: its error is the
    # request's.
    import asynctasq_fastapi.dependency as dependency_module

    async def broker_down(tasks: Any) -> list[Any]:
        raise ConnectionError("broker down")

    monkeypatch.setattr(dependency_module, "dispatch_many", broker_down)
    app = fastapi_app.create_service_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/signup", params={"address": "bob"}).status_code == 500
    assert addresses(driver) == ["ada"]


def test_on_success_queues_before_the_response_is_sent(
    memory: tuple[dict[str, Any], MemoryDriver],
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A client told 200 must be able to count on its task being queued: when queueing fails,
    # the request fails instead of the error going only to the server's log.
    import asynctasq_fastapi.dependency as dependency_module

    async def broker_down(tasks: Any) -> list[Any]:
        raise ConnectionError("broker down")

    monkeypatch.setattr(dependency_module, "dispatch_many", broker_down)
    settings, driver = memory
    app = fastapi_app.create_app(settings, database)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/signup-on-success", params={"address": "x", "fail": False})
    assert response.status_code == 500
    assert addresses(driver) == []


def test_after_commit_inside_a_request(
    memory: tuple[dict[str, Any], MemoryDriver], database: str
) -> None:
    settings, driver = memory
    with TestClient(fastapi_app.create_app(settings, database)) as client:
        rolled_back = client.post("/users", params={"email": "gone@example.com", "fail": True})
        assert rolled_back.status_code == 409
        assert addresses(driver) == []
        created = client.post("/users", params={"email": "kept@example.com", "fail": False})
        assert created.status_code == 200 and created.json() == {"id": 1}
    assert addresses(driver) == ["kept@example.com"]


def _redis_reachable() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


async def _drop_prefix(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.mark.slow
def test_a_real_worker_runs_what_the_endpoints_queued_on_redis(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _redis_reachable():
        pytest.skip(f"redis unreachable at {REDIS_URL}")
    prefix = f"atq-fastapi-{uuid.uuid4().hex[:10]}"
    settings = {"driver": "redis", "redis": {"url": REDIS_URL, "prefix": prefix}}
    signups = tmp_path / "signups.txt"
    monkeypatch.setenv("SIGNUPS_FILE", str(signups))
    try:
        with TestClient(fastapi_app.create_app(settings, database)) as client:
            for i in range(5):
                assert client.post("/signup", params={"address": f"a{i}"}).status_code == 200
            client.post("/users", params={"email": "rolled-back", "fail": True})
            client.post("/users", params={"email": "committed", "fail": False})
            client.post("/signup-on-success", params={"address": "refused", "fail": True})
        worker = subprocess.run(
            [sys.executable, "-c", WORKER, json.dumps(settings)],
            cwd=HERE,
            env={**os.environ, "SIGNUPS_FILE": str(signups)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert worker.returncode == 0, worker.stderr
        assert json.loads(worker.stdout.splitlines()[-1]) == {"succeeded": 6, "dead": 0}
        assert sorted(signups.read_text().split()) == ["a0", "a1", "a2", "a3", "a4", "committed"]
    finally:
        asyncio.run(_drop_prefix(prefix))
