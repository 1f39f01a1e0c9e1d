"""Processes for the browser tests: a worker and the dashboard on a private Redis prefix,
and the system chromium (on sys.path through conftest; not collected)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TASKS_DIR = Path(__file__).resolve().parent
SCRIPT = Path(sys.executable).with_name("asynctasq")
REDIS_URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BROWSERS = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
    "/usr/bin/google-chrome-stable",
)
"""Where a system Chromium or Chrome is looked for (Debian's package first; a CI image may
ship Chrome instead), unless ``ASYNCTASQ_TEST_CHROMIUM`` names one."""
CHROMIUM = os.environ.get("ASYNCTASQ_TEST_CHROMIUM") or next(
    (path for path in BROWSERS if os.access(path, os.X_OK)), BROWSERS[0]
)
SCREENSHOTS = os.environ.get("ASYNCTASQ_DASHBOARD_SCREENSHOTS")
"""A directory to save the docs' screenshots in (``docs/operations/img``), or unset."""


def unavailable(reason: str) -> None:
    """Skip, or fail under CI (where every browser test must run)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser tests must run)")
    pytest.skip(reason)


def require_browser() -> None:
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing: run scripts/browser.sh")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed (uv sync)")
    if not SCRIPT.exists():
        unavailable(f"{SCRIPT} is not installed (uv sync)")


def require_redis() -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return
    except OSError:
        unavailable(f"Redis is not reachable at {REDIS_URL}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_args(prefix: str) -> list[str]:
    return ["--driver", "redis", "-o", f"url={REDIS_URL}", "-o", f"prefix={prefix}"]


def child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ASYNCTASQ_") or k.startswith("ASYNCTASQ_TEST_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def process(log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``asynctasq ARGS...`` with its output in `log`; stopped (SIGTERM) afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SCRIPT), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=TASKS_DIR,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_for_http(url: str, proc: subprocess.Popen[bytes], log: Path, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {within} s:\n{log.read_text()[-4000:]}")
