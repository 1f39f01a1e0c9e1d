"""Fixtures: a moto SQS server on loopback for the session, and isolated drivers.

Set ``ASYNCTASQ_TEST_SQS_ENDPOINT`` to use a running SQS stand-in instead (loopback only).
Without moto the tests skip, or fail when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctasq_sqs import SQSDriver

MOTO_SERVER = Path(__file__).with_name("moto_server.py")
"""moto's server with atomic ReceiveMessage (see that file)."""

CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"SQS tests need a server under CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """URL of an SQS stand-in on loopback: ASYNCTASQ_TEST_SQS_ENDPOINT, or a moto server."""
    given = os.environ.get("ASYNCTASQ_TEST_SQS_ENDPOINT")
    if given:
        yield given
        return
    if importlib.util.find_spec("moto") is None:
        _unavailable("moto is not installed (uv sync --all-packages installs moto[server])")
    # One server per pytest process (each xdist worker starts its own: about a second). The
    # free port may be taken by another process before moto binds it: then try another.
    for _ in range(3):
        url, process = _start_moto(_free_port())
        if process is not None:
            break
    else:
        _unavailable(f"moto server did not start (last tried {url})")
    try:
        yield url
    finally:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def _start_moto(port: int) -> tuple[str, subprocess.Popen[bytes] | None]:
    """(URL, process) of a moto server on `port`; no process if it exited or never answered."""
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            return url, None
        time.sleep(0.1)
    if process.poll() is not None:  # another run's server answered on this port
        return url, None
    return url, process


def driver_settings(endpoint: str, **settings: Any) -> dict[str, Any]:
    """Settings for a driver of its own: a unique queue name prefix, queues created."""
    base: dict[str, Any] = {
        **CREDENTIALS,
        "endpoint_url": endpoint,
        "queue_name_prefix": f"t{uuid.uuid4().hex[:10]}-",
        "create_queues": True,
    }
    return {**base, **settings}


MakeDriver = Callable[..., Awaitable[SQSDriver]]


@pytest.fixture
async def make_driver(sqs_endpoint: str) -> AsyncIterator[MakeDriver]:
    """Build connected drivers isolated from other tests; closed at the end of the test."""
    made: list[SQSDriver] = []

    async def make(**settings: Any) -> SQSDriver:
        driver = SQSDriver(**driver_settings(sqs_endpoint, **settings))
        await driver.connect()
        made.append(driver)
        return driver

    yield make
    for driver in made:
        await driver.close()


@pytest.fixture
async def driver(make_driver: MakeDriver) -> SQSDriver:
    """A connected driver with its own queues."""
    return await make_driver()
