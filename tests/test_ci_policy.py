"""The root conftest's rule: under CI, a skip for want of a package or server fails."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asynctasq_root_conftest", ROOT / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "reason",
    [
        "could not import 'asynctasq_redis': No module named 'asynctasq_redis'",
        "asynctasq-redis is not installed",
        "Redis at redis://127.0.0.1:6379/15 is unreachable (boom)",
        "RabbitMQ not reachable at amqp://127.0.0.1:5672/",
        "redis-server and openssl are needed for the TLS test",
        "no time zone database installed",
        "guides not found at /x/spec",
    ],
)
def test_reasons_about_the_environment_are_missing_dependencies(reason: str) -> None:
    assert _root_conftest().missing_dependency(reason)


@pytest.mark.parametrize(
    "reason",
    [
        "RedisDriver keeps no claims",
        "this broker does not order messages",
        "leases on this broker do not expire by time",
        "a fragment (await outside a function), not a program",
    ],
)
def test_reasons_about_the_code_are_not(reason: str) -> None:
    assert not _root_conftest().missing_dependency(reason)


SAMPLE = """
import pytest

def test_missing_package():
    pytest.importorskip("asynctasq_no_such_package")

@pytest.fixture
def server():
    pytest.skip("Frob server unreachable at frob://127.0.0.1:1")

def test_missing_server(server):
    pass

def test_not_applicable():
    pytest.skip("this broker does not order messages")
"""


@pytest.mark.parametrize(
    ("ci", "expected"), [("true", "1 failed, 1 skipped, 1 error"), ("", "3 skipped")]
)
def test_ci_turns_missing_dependency_skips_into_failures(  # (a fixture's: an error)
    tmp_path: Path, ci: str, expected: str
) -> None:
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS"}}
    if ci:
        env["CI"] = ci
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "no:asyncio", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert expected in proc.stdout, proc.stdout + proc.stderr
    if ci:
        assert "skipped under CI: could not import 'asynctasq_no_such_package'" in proc.stdout
