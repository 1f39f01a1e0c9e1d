"""``asynctasq doctor``: plugins with their distributions, masked configuration, connectivity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_testing import Invoke, requires_sqlite

from asynctasq.plugins import CLI_GROUP, DRIVERS_GROUP, plugins


def test_healthy_set_up(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("doctor", *memory_args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "asynctasq-core" in out and "asynctasq-cli" in out and "python" in out
    for name, info in plugins(DRIVERS_GROUP).items():
        row = next(line for line in out.splitlines() if f" {name} " in line)
        assert str(info.distribution) in row and "ok" in row
    assert "Driver in effect: memory" in out
    assert "answered in" in out
    assert "No problems found." in out


def test_json_report(cli: Invoke, memory_args: list[str]) -> None:
    result = cli("doctor", *memory_args, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["driver"] == "memory" and report["problems"] == []
    drivers = {p["name"]: p for p in report["plugins"] if p["group"] == "asynctasq.drivers"}
    assert drivers["memory"]["distribution"] == "asynctasq-core"
    assert drivers["memory"]["version"] == "0.1.0"
    clis = {p["name"] for p in report["plugins"] if p["group"] == "asynctasq.cli"}
    assert clis == set(plugins(CLI_GROUP))
    assert report["connectivity"]["ok"] is True
    assert report["settings"]["worker"]["concurrency"] == {"value": 10, "source": "default"}


@requires_sqlite
def test_embedded_default_is_named(cli: Invoke) -> None:
    result = cli("doctor", "--json")
    report = json.loads(result.stdout)
    assert report["driver"] == "sqlite" and report["embedded_default"] is True
    assert "embedded default" in cli("doctor").stdout


def test_secrets_are_masked_and_sources_shown(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("asynctasq_redis")
    Path(".env").write_text("ASYNCTASQ_REDIS_USERNAME=envfile-user\n")
    monkeypatch.setenv("ASYNCTASQ_REDIS_PASSWORD", "s3cret-env")
    result = cli(
        "doctor",
        "--driver",
        "redis",
        "--json",
        "--timeout",
        "0.5",
        "--set",
        "redis.url=redis://user:s3cret-url@127.0.0.1:1/0",
        "--set",
        "redis.retry_attempts=0",
    )
    report = json.loads(result.stdout)
    assert "s3cret" not in result.output
    redis = report["settings"]["redis"]
    assert redis["password"] == {"value": "***", "source": "environment"}
    assert redis["url"] == {"value": "redis://user:***@127.0.0.1:1/0", "source": "command line"}
    assert redis["username"] == {"value": "envfile-user", "source": ".env"}
    assert redis["prefix"]["source"] == "default"
    text = cli(
        "doctor",
        "--driver",
        "redis",
        "--timeout",
        "0.5",
        "--set",
        "redis.url=redis://user:s3cret-url@127.0.0.1:1/0",
        "--set",
        "redis.retry_attempts=0",
    )
    assert "s3cret" not in text.output
    assert "redis.password" in text.stdout and "'***'" in text.stdout


def test_unreachable_broker_is_a_problem(cli: Invoke) -> None:
    pytest.importorskip("asynctasq_redis")
    result = cli(
        "doctor",
        "--driver",
        "redis",
        "-o",
        "url=redis://127.0.0.1:1/0",
        "-o",
        "retry_attempts=0",
        "--timeout",
        "2",
    )
    assert result.exit_code == 1
    assert "✗ cannot connect to redis" in result.stdout
    assert "1 problem(s)" in result.stdout


def test_invalid_configuration_is_a_problem(cli: Invoke) -> None:
    result = cli("doctor", "--json", env={"ASYNCTASQ_WORKER_CONCURRENCY": "lots"})
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert any("concurrency" in p for p in report["problems"])
    assert report["plugins"]  # the plugin checks still ran


def test_broken_plugins_are_reported_with_their_distribution(
    cli: Invoke, fake_plugins: Path, memory_args: list[str]
) -> None:
    result = cli("doctor", *memory_args, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    by_name = {(p["group"], p["name"]): p for p in report["plugins"]}
    broken = by_name[("asynctasq.cli", "broken")]
    assert broken["distribution"] == "asynctasq-fake-cli" and broken["version"] == "1.2.3"
    assert broken["error"].startswith("ModuleNotFoundError")
    assert by_name[("asynctasq.cli", "fake")]["error"] is None
    assert "expected a typer.Typer" in by_name[("asynctasq.cli", "notapp")]["error"]
    assert "failed to import" in by_name[("asynctasq.drivers", "fakebroken")]["error"]
    assert len(report["problems"]) == 3
    text = cli("doctor", *memory_args)
    assert "broken: ModuleNotFoundError" in text.stdout
    assert "3 problem(s)" in text.stdout


def test_doctor_names_where_task_code_may_come_from(
    cli: Invoke, memory_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(app))
    result = cli("doctor", *memory_args, "--json")
    roots = json.loads(result.stdout)["task_code_roots"]
    assert str(app.resolve()) in roots and str(Path.cwd().resolve()) in roots
