"""Command line > environment > .env > defaults, and the --set / --driver-option spellings."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_testing import requires_sqlite

from asynctasq.errors import ConfigError, UnknownDriverError
from asynctasq_cli.commands.worker import WorkerOptions
from asynctasq_cli.settings import ConnectionOptions, cli_setting, load_config, parse_set


def test_parse_set_sections_flat_keys_and_driver() -> None:
    parsed = parse_set(
        [
            "redis.url=redis://h:1/0",
            "worker.concurrency=5",
            "redis_db=3",
            "driver=redis",
            "redis.password=a=b",
        ]
    )
    assert parsed == {
        "redis": {"url": "redis://h:1/0", "password": "a=b"},
        "worker": {"concurrency": "5"},
        "redis_db": "3",
        "driver": "redis",
    }


@pytest.mark.parametrize("item", ["redis.url", "=x", ".url=x", "redis.=x", "a.b.c=1"])
def test_parse_set_rejects_malformed_items(item: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_set([item])


@requires_sqlite
def test_defaults_without_any_source() -> None:
    loaded = load_config(ConnectionOptions())
    assert loaded.driver_name == "sqlite"
    assert loaded.embedded_default is True
    assert loaded.config.worker.concurrency == 10


def test_dotenv_beats_defaults(tmp_path: Path) -> None:
    Path(".env").write_text("ASYNCTASQ_WORKER_CONCURRENCY=4\nASYNCTASQ_DRIVER=memory\n")
    loaded = load_config(ConnectionOptions())
    assert loaded.config.worker.concurrency == 4
    assert loaded.driver_name == "memory"
    assert loaded.embedded_default is False


def test_environment_beats_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("ASYNCTASQ_WORKER_CONCURRENCY=4\n")
    monkeypatch.setenv("ASYNCTASQ_WORKER_CONCURRENCY", "6")
    assert load_config(ConnectionOptions(driver="memory")).config.worker.concurrency == 6


def test_command_line_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("ASYNCTASQ_WORKER_CONCURRENCY=4\nASYNCTASQ_DRIVER=sqlite\n")
    monkeypatch.setenv("ASYNCTASQ_WORKER_CONCURRENCY", "6")
    monkeypatch.setenv("ASYNCTASQ_DRIVER", "sqlite")
    loaded = load_config(
        ConnectionOptions(driver="memory"), WorkerOptions(concurrency=8).as_settings()
    )
    assert loaded.config.worker.concurrency == 8
    assert loaded.driver_name == "memory"


def test_explicit_option_beats_set() -> None:
    options = ConnectionOptions(
        driver="memory", set=("worker.concurrency=5", "worker.shutdown_timeout=3")
    )
    loaded = load_config(options, WorkerOptions(concurrency=2).as_settings())
    assert loaded.config.worker.concurrency == 2
    assert loaded.config.worker.shutdown_timeout == 3.0


@requires_sqlite
def test_set_beats_environment_for_driver_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASQ_SQLITE_PATH", "from-env.db")
    assert load_config(ConnectionOptions()).config.driver_settings("sqlite") == {
        "path": "from-env.db"
    }
    loaded = load_config(ConnectionOptions(set=("sqlite.path=from-cli.db",)))
    assert loaded.config.driver_settings("sqlite") == {"path": "from-cli.db"}


@requires_sqlite
def test_driver_option_applies_to_the_driver_in_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_config(ConnectionOptions(driver_options=("path=x.db", "busy_timeout=2")))
    assert loaded.driver_name == "sqlite"
    assert loaded.config.driver_settings("sqlite") == {"path": "x.db", "busy_timeout": 2.0}
    monkeypatch.setenv("ASYNCTASQ_DRIVER", "memory")
    loaded = load_config(ConnectionOptions(driver_options=("namespace=n1",)))
    assert loaded.config.driver_settings("memory") == {"namespace": "n1"}


def test_env_file_option(tmp_path: Path) -> None:
    env = tmp_path / "custom.env"
    env.write_text("ASYNCTASQ_WORKER_QUEUES=a,b\n")
    Path(".env").write_text("ASYNCTASQ_WORKER_QUEUES=ignored\n")
    loaded = load_config(ConnectionOptions(driver="memory", env_file=env))
    assert loaded.config.worker.queues == ("a", "b")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(ConnectionOptions(env_file=tmp_path / "missing.env"))


@requires_sqlite
def test_errors_name_the_command_line_and_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"command line: unknown setting sqlite\.nope"):
        load_config(ConnectionOptions(set=("sqlite.nope=1",)))
    with pytest.raises(ConfigError, match="busy_timeout"):
        load_config(ConnectionOptions(driver_options=("busy_timeout=soon",)))
    with pytest.raises(UnknownDriverError, match="unknown driver 'nosuchdriver'"):
        load_config(ConnectionOptions(driver="nosuchdriver"))


def test_a_missing_first_party_driver_names_its_package(without_driver: None) -> None:
    with pytest.raises(UnknownDriverError, match="pip install asynctasq-redis"):
        load_config(ConnectionOptions(driver="redis"))


def test_cli_only_settings_follow_the_same_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli_setting("LOG_LEVEL", None, None, "info") == "info"
    Path(".env").write_text("ASYNCTASQ_LOG_LEVEL=debug\n")
    assert cli_setting("LOG_LEVEL", None, None, "info") == "debug"
    monkeypatch.setenv("ASYNCTASQ_LOG_LEVEL", "warning")
    assert cli_setting("LOG_LEVEL", None, None, "info") == "warning"
    assert cli_setting("LOG_LEVEL", "error", None, "info") == "error"
