"""Configuration: init(), set_global_config(), environment and .env, errors that name keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from asynctasq import init, set_global_config, task
from asynctasq.config import TaskDefaults, get_config
from asynctasq.errors import ConfigError, UnknownDriverError


def test_init_dict_sets_driver_and_sections() -> None:
    config = init({"driver": "memory", "task_defaults": {"queue": "q", "max_attempts": 7}})
    assert config.driver == "memory"
    assert config.task_defaults.queue == "q"
    assert get_config().task_defaults.max_attempts == 7


def test_set_global_config_merges_flat_and_nested_keys() -> None:
    set_global_config(task_defaults_queue="a", worker={"concurrency": 4})
    set_global_config(task_defaults={"retry_strategy": "fixed"})
    config = get_config()
    assert config.task_defaults.queue == "a"
    assert config.task_defaults.retry_strategy == "fixed"
    assert config.worker.concurrency == 4


def test_unknown_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="'colour'"):
        init({"driver": "memory", "colour": "blue"})
    with pytest.raises(ConfigError, match="task_defaults.queeue"):
        set_global_config(task_defaults={"queeue": "x"})


def test_bad_values_are_errors_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        init({"task_defaults": {"max_attempts": "many"}})
    with pytest.raises(ConfigError, match="retry_delay"):
        init({"task_defaults": {"retry_delay": -1}})
    with pytest.raises(ConfigError, match="retry_strategy"):
        init({"task_defaults": {"retry_strategy": "linear"}})


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("timeout", 0, "task_defaults.timeout must be greater than 0"),
        ("visibility_timeout", 1e-300, "task_defaults.visibility_timeout must be at least 0.001"),
        ("max_attempts", 10**9, "task_defaults.max_attempts must be at most"),
        ("retry_max_delay", 1e12, "task_defaults.retry_max_delay must be at most"),
        ("queue", "two words", "task_defaults.queue"),
    ],
)
def test_task_defaults_are_checked_as_a_task_setting_is(
    setting: str, value: object, says: str
) -> None:
    # A default applies wherever a task leaves the setting out, so a bad one is refused when
    # configured, not at some later dispatch (or in the broker).
    with pytest.raises(ConfigError, match=says):
        init({"driver": "memory", "task_defaults": {setting: value}})
    with pytest.raises(ConfigError, match=says):
        TaskDefaults(**{setting: value})  # type: ignore[arg-type]  # the wrong type on purpose


def test_a_visibility_timeout_under_a_millisecond_is_refused_at_the_call_site() -> None:
    with pytest.raises(ValueError, match="visibility_timeout must be at least 0.001 seconds"):

        @task(visibility_timeout=0.0001)
        async def nap() -> None: ...

    @task(visibility_timeout=0.001)
    async def shortest() -> None: ...


def test_unknown_driver_lists_installed_and_what_to_install() -> None:
    with pytest.raises(UnknownDriverError) as info:
        init({"driver": "redsi"})
    message = str(info.value)
    assert "redsi" in message and "memory" in message and "did you mean 'redis'" in message


def test_first_party_driver_not_installed_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asynctasq import plugins

    monkeypatch.setattr(plugins, "_scan", lambda group: {})
    with pytest.raises(UnknownDriverError, match="pip install asynctasq-redis"):
        init({"driver": "redis"})


def test_environment_and_dotenv_with_precedence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "ASYNCTASQ_DRIVER=memory\nASYNCTASQ_TASK_DEFAULTS_QUEUE=from-dotenv\n"
        "ASYNCTASQ_TASK_DEFAULTS_MAX_ATTEMPTS=9\n"
    )
    monkeypatch.setenv("ASYNCTASQ_TASK_DEFAULTS_QUEUE", "from-env")
    monkeypatch.setenv("ASYNCTASQ_WORKER_QUEUES", "a, b")
    monkeypatch.setenv("ASYNCTASQ_TEST_SOMETHING", "ignored")
    config = init(dotenv=env_file)
    assert config.driver == "memory"
    assert config.task_defaults.queue == "from-env"  # environment beats .env
    assert config.task_defaults.max_attempts == 9  # .env beats defaults, converted to int
    assert config.worker.queues == ("a", "b")
    config = init({"task_defaults": {"queue": "from-code"}}, dotenv=env_file)
    assert config.task_defaults.queue == "from-code"  # code beats environment


def test_env_unknown_key_in_known_section_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASQ_TASK_DEFAULTS_QUEUEE", "x")
    with pytest.raises(ConfigError, match="queuee"):
        init()


def test_driver_instance_in_config_is_refused_with_advice() -> None:
    from asynctasq.testing import MemoryDriver

    with pytest.raises(ConfigError, match="driver instances"):
        init({"driver": MemoryDriver()})


def test_driver_section_keys_are_the_driver_constructor_keywords() -> None:
    config = init({"driver": "memory", "memory": {"namespace": "x"}})
    assert config.driver_settings("memory") == {"namespace": "x"}
    with pytest.raises(ConfigError, match="memory.nope"):
        init({"memory": {"nope": 1}})


def test_task_defaults_keep_the_checked_value() -> None:
    # A whole float is a count (as in a task's own max_attempts); the wire takes an int.
    defaults = TaskDefaults(max_attempts=3.0)  # type: ignore[arg-type]  # a float on purpose
    assert defaults.max_attempts == 3 and type(defaults.max_attempts) is int
