"""``ASYNCTASQ_*`` variables that name no setting: misspelt ones are named, others left alone."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from asynctasq import init
from asynctasq.config import ConfigWarning, StrayVariable, stray_variables
from asynctasq.errors import ConfigError


def test_a_misspelt_section_in_the_environment_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASYNCTASQ_WORKERS_CONCURRENCY", "5")
    with pytest.warns(ConfigWarning) as caught:
        config = init(dotenv=tmp_path / ".env")
    assert config.worker.concurrency == 10  # not applied: it names nothing
    [warning] = caught
    assert warning.filename == __file__
    assert str(warning.message) == (
        "environment: ASYNCTASQ_WORKERS_CONCURRENCY is not an AsyncTasQ setting and is "
        "ignored; did you mean ASYNCTASQ_WORKER_CONCURRENCY?"
    )


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("ASYNCTASQ_TASK_DEFAULT_QUEUE", "ASYNCTASQ_TASK_DEFAULTS_QUEUE"),
        ("ASYNCTASQ_TASKDEFAULTS_MAX_ATTEMPTS", "ASYNCTASQ_TASK_DEFAULTS_MAX_ATTEMPTS"),
        ("ASYNCTASQ_POSTGRESQL_DSN", "ASYNCTASQ_POSTGRES_DSN"),
        ("ASYNCTASQ_REDDIS_URL", "ASYNCTASQ_REDIS_URL"),
        ("ASYNCTASQ_CONCURRENCY", "ASYNCTASQ_WORKER_CONCURRENCY"),
        ("ASYNCTASQ_MAX_ATTEMPTS", "ASYNCTASQ_TASK_DEFAULTS_MAX_ATTEMPTS"),
        ("ASYNCTASQ_DRIVERS", "ASYNCTASQ_DRIVER"),
        ("ASYNCTASQ_DRIVR", "ASYNCTASQ_DRIVER"),
    ],
)
def test_misspelt_settings_in_dotenv_are_named_with_what_was_meant(
    tmp_path: Path, name: str, meant: str
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"{name}=5\n")
    with pytest.warns(ConfigWarning, match=f"{env_file}: {name} .* did you mean {meant}\\?"):
        init(dotenv=env_file)
    [stray] = stray_variables(env_file, environ={})
    assert stray == StrayVariable(name, str(env_file), meant)


def test_other_tools_variables_are_left_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    foreign = {
        "ASYNCTASQ_TEST_REDIS_URL": "redis://x",
        "ASYNCTASQ_TEST_ANYTHING_AT_ALL": "1",
        "ASYNCTASQ_BENCH_PYTHON": "python3",
        "ASYNCTASQ_LOG_LEVEL": "debug",
        "ASYNCTASQ_LOG_FORMAT": "json",
        "ASYNCTASQ_DEBUG": "1",
        "ASYNCTASQ_CRASH_DIR": "/tmp",
        "ASYNCTASQ_SA_TEST_SUFFIX": "abc",
        "ASYNCTASQ_DEPLOY_COLOUR": "blue",
    }
    for name, value in foreign.items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init(dotenv=tmp_path / ".env")
    strays = stray_variables(tmp_path / ".env")
    assert {s.name for s in strays} == {
        "ASYNCTASQ_CRASH_DIR",
        "ASYNCTASQ_SA_TEST_SUFFIX",
        "ASYNCTASQ_DEPLOY_COLOUR",
    }
    assert all(s.suggestion is None and s.source == "environment" for s in strays)


def test_an_unknown_key_of_a_known_section_stays_an_error(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ASYNCTASQ_WORKER_CONCURENCY=5\n")
    with pytest.raises(ConfigError, match="unknown setting worker.concurency"):
        init(dotenv=env_file)
    assert stray_variables(env_file, environ={}) == []


def test_one_brokers_settings_without_a_driver_chosen_warn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The tasks would go to the embedded default while a worker waits on that broker."""
    monkeypatch.setenv("ASYNCTASQ_REDIS_URL", "redis://127.0.0.1:6379/3")
    with pytest.warns(ConfigWarning) as caught:
        config = init(dotenv=tmp_path / ".env")
    assert config.driver is None
    [warning] = caught
    assert warning.filename == __file__  # the caller's line, not one inside the package
    assert str(warning.message) == (
        "environment: redis settings are given but no driver is chosen, so the embedded "
        "sqlite driver is used; set ASYNCTASQ_DRIVER=redis (or init({'driver': 'redis'}))"
    )
    monkeypatch.delenv("ASYNCTASQ_REDIS_URL")
    (tmp_path / ".env").write_text("ASYNCTASQ_POSTGRES_DSN=postgresql://x/y\n")
    with pytest.warns(ConfigWarning, match=r"\.env: postgres settings are given"):
        init(dotenv=tmp_path / ".env")


def test_settings_given_in_code_without_a_driver_do_not_warn(tmp_path: Path) -> None:
    """Code may name the driver where it is used: ``@task(driver="redis")``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init({"redis": {"url": "redis://127.0.0.1:6379/3"}}, dotenv=tmp_path / ".env")


@pytest.mark.parametrize(
    "settings",
    [
        {"driver": "redis"},  # chosen
        {"sqlite": {"path": "q.db"}},  # the default's own settings
        {"postgres": {"dsn": "postgresql://x/y"}},  # several: one is chosen per process
    ],
)
def test_settings_of_the_chosen_or_default_driver_do_not_warn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: dict[str, object]
) -> None:
    monkeypatch.setenv("ASYNCTASQ_REDIS_URL", "redis://127.0.0.1:6379/3")
    if "sqlite" in settings:
        monkeypatch.delenv("ASYNCTASQ_REDIS_URL")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init(settings, dotenv=tmp_path / ".env")
