"""Shared fixtures: an isolated configuration per test, the CLI runner, memory queues."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import asynctasq.config as config_module
import asynctasq.plugins as core_plugins
from asynctasq.testing import MemoryDriver
from asynctasq_cli import plugins as cli_plugins
from asynctasq_cli.app import app
from asynctasq_cli.output import state

TASKS_DIR = Path(__file__).parent / "task_modules"
if str(TASKS_DIR) not in sys.path:
    sys.path.insert(0, str(TASKS_DIR))

import cli_test_tasks  # noqa: E402  (needs TASKS_DIR on sys.path)
from cli_testing import Invoke  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ASYNCTASQ_* variables, a fresh working directory, default config and plugins."""
    for name in list(os.environ):
        if name.startswith("ASYNCTASQ_") and not name.startswith("ASYNCTASQ_TEST_"):
            monkeypatch.delenv(name)
    for name in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    saved = config_module.configured()
    config_module.reset_config()
    cli_plugins.forget()
    state.debug = False
    cli_test_tasks.running = cli_test_tasks.most_running = 0
    yield
    config_module.use_config(saved)
    cli_plugins.forget()
    core_plugins.refresh()
    state.debug = False


@pytest.fixture
def cli() -> Invoke:
    """Run ``asynctasq ARGS...`` in this process; returns typer's `Result`."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, env=env)

    return invoke


@pytest.fixture
def namespace() -> str:
    """A memory-driver namespace of this test's own."""
    return f"cli-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def memory(namespace: str) -> MemoryDriver:
    """The memory queues the CLI sees with `memory_args`."""
    return MemoryDriver(namespace=namespace)


@pytest.fixture
def memory_args(namespace: str) -> list[str]:
    """Connection options selecting this test's memory queues."""
    return ["--driver", "memory", "--set", f"memory.namespace={namespace}"]


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """Where test tasks leave their marker files."""
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def without_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend asynctasq-redis is not installed (its entry point is hidden)."""
    real = core_plugins._scan

    def scan(group: str) -> dict[str, Any]:
        found = dict(real(group))
        if group == core_plugins.DRIVERS_GROUP:
            found.pop("redis", None)
        return found

    scan.cache_clear = real.cache_clear  # type: ignore[attr-defined]
    monkeypatch.setattr(core_plugins, "_scan", scan)


FAKE_PLUGIN_MODULE = '''
import typer

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Fake driver tools."""


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def migrate(dry_run: bool = typer.Option(False, "--dry-run")) -> None:
    """Pretend to migrate."""
    typer.echo(f"fake migrate dry_run={dry_run}")


class FakeDriver:
    """A driver class without a schema (for `asynctasq migrate`)."""

    def __init__(self, label: str = "x") -> None:
        self.label = label


not_an_app = 42
'''

FAKE_ENTRY_POINTS = """\
[asynctasq.cli]
fake = asynctasq_fake_cli:app
broken = asynctasq_fake_missing_module:app
notapp = asynctasq_fake_cli:not_an_app
worker = asynctasq_fake_cli:app

[asynctasq.drivers]
fakebroken = asynctasq_fake_missing_module:Driver
"""


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution ``asynctasq-fake-cli 1.2.3`` with good and broken entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "asynctasq_fake_cli.py").write_text(FAKE_PLUGIN_MODULE)
    info = site / "asynctasq_fake_cli-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: asynctasq-fake-cli\nVersion: 1.2.3\n"
    )
    (info / "entry_points.txt").write_text(FAKE_ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    core_plugins.refresh()
    cli_plugins.forget()
    yield site
    sys.modules.pop("asynctasq_fake_cli", None)
    core_plugins.refresh()
