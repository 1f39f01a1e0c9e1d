"""Settings: constructor keywords as users and core's config write them (no server needed)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from asynctasq.drivers.registry import create_driver, driver_class, driver_settings
from asynctasq.errors import ConfigError
from asynctasq_sqs import SQSDriver


def test_region_alias_and_region_name_are_one_setting() -> None:
    assert SQSDriver(region="eu-west-1").region_name == "eu-west-1"
    assert SQSDriver(region_name="eu-west-1").region_name == "eu-west-1"
    with pytest.raises(TypeError, match="both region_name and region"):
        SQSDriver(region="eu-west-1", region_name="us-east-1")


def test_misspelled_setting_is_an_error() -> None:
    with pytest.raises(TypeError, match="endpoint"):
        SQSDriver(endpoint="http://127.0.0.1:1")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("wait_time_seconds", 21),
        ("visibility_timeout", 0),
        ("visibility_timeout", 43_201),
        ("max_receive_count", 0),
        ("max_message_size", 10),
    ],
)
def test_out_of_range_settings_are_refused(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name):
        SQSDriver(**{name: value})


def test_nothing_connects_in_init() -> None:
    driver = SQSDriver(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    assert not driver.is_connected()


def test_repr_shows_no_secret() -> None:
    driver = SQSDriver(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cr3t")
    assert "s3cr3t" not in repr(driver)
    assert "AKIDEXAMPLE" not in repr(driver)


def test_settings_have_plain_types_for_environment_strings() -> None:
    plain = {"str", "int", "bool", "float", "str | None", "int | None"}
    for name, param in inspect.signature(SQSDriver).parameters.items():
        assert param.kind is param.KEYWORD_ONLY, name
        assert param.annotation in plain, (name, param.annotation)


def test_entry_point_and_core_config_build_the_driver() -> None:
    assert driver_class("sqs") is SQSDriver
    assert {"region", "region_name", "endpoint_url", "queue_url_prefix", "create_queues"} <= set(
        driver_settings(SQSDriver)
    )
    driver = create_driver("sqs", {"region": "us-east-1", "create_queues": True})
    assert isinstance(driver, SQSDriver)
    assert driver.region_name == "us-east-1"
    assert driver.create_queues is True
    with pytest.raises(ConfigError, match="regoin"):
        create_driver("sqs", {"regoin": "us-east-1"})


def test_environment_names_map_to_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from asynctasq import config as config_module
    from asynctasq.drivers.connections import build_driver

    monkeypatch.setattr(config_module, "_config", None)  # restored after the test
    for name, value in {
        "ASYNCTASQ_DRIVER": "sqs",
        "ASYNCTASQ_SQS_REGION": "eu-west-1",
        "ASYNCTASQ_SQS_ENDPOINT_URL": "http://127.0.0.1:9",
        "ASYNCTASQ_SQS_QUEUE_URL_PREFIX": "http://127.0.0.1:9/000000000000/",
        "ASYNCTASQ_SQS_AWS_ACCESS_KEY_ID": "key",
        "ASYNCTASQ_SQS_AWS_SECRET_ACCESS_KEY": "secret",
        "ASYNCTASQ_SQS_CREATE_QUEUES": "true",
        "ASYNCTASQ_SQS_WAIT_TIME_SECONDS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    config = config_module.init(dotenv=tmp_path / "absent.env")
    driver = build_driver(config=config)
    assert isinstance(driver, SQSDriver)
    assert (driver.region_name, driver.endpoint_url) == ("eu-west-1", "http://127.0.0.1:9")
    assert (driver.create_queues, driver.wait_time_seconds) == (True, 5)
    assert driver._urls.url_prefix == "http://127.0.0.1:9/000000000000/"
    assert not driver.is_connected()
