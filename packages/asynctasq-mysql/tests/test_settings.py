"""The driver's settings through the shared configuration: ``pool_recycle=-1`` as documented.

(``asynctasq migrate`` reading them from ``.env`` and ``--set`` is tested with the CLI.)"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import asynctasq.config as config_module
from asynctasq import init
from asynctasq.config import ConfigWarning
from asynctasq.drivers.registry import create_driver
from asynctasq.errors import ConfigError
from asynctasq_mysql import MySQLDriver
from asynctasq_mysql.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _own_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ASYNCTASQ_* variables but the test server's, an empty working directory, and the
    process-wide configuration put back afterwards."""
    for name in list(os.environ):
        if name.startswith("ASYNCTASQ_") and not name.startswith("ASYNCTASQ_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    saved = config_module.configured()
    yield
    config_module.use_config(saved)


def test_pool_recycle_minus_one_means_never_in_code_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = init({"mysql": {"pool_recycle": -1}})
    assert config.driver_settings("mysql") == {"pool_recycle": -1}
    monkeypatch.setenv("ASYNCTASQ_MYSQL_POOL_RECYCLE", "-1")
    with pytest.warns(ConfigWarning, match="mysql settings are given but no driver is chosen"):
        config = init()
    assert config.driver_settings("mysql") == {"pool_recycle": -1.0}
    driver = create_driver("mysql", config.driver_settings("mysql"))
    assert isinstance(driver, MySQLDriver)


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"pool_recycle": -2}, "mysql.pool_recycle: must be 0 or more, or -1"),
        ({"pool_recycle": -0.5}, "mysql.pool_recycle"),
        ({"max_payload_size": -1}, "mysql.max_payload_size: must not be negative"),
        ({"poll_interval_min": -1}, "mysql.poll_interval_min: must not be negative"),
        ({"min_pool_size": -1}, "mysql.min_pool_size: must not be negative"),
    ],
)
def test_other_negative_values_are_still_refused(settings: dict[str, Any], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        init({"mysql": settings})


def test_the_driver_itself_refuses_other_negative_recycles() -> None:
    MySQLDriver(pool_recycle=-1)
    MySQLDriver(pool_recycle=0)
    with pytest.raises(ConfigurationError, match="pool_recycle"):
        MySQLDriver(pool_recycle=-5)


async def test_a_pool_that_never_recycles_connects_and_works(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    driver = make_driver(pool_recycle=-1, auto_migrate=True)
    await driver.connect()
    assert await driver.stats(["q"])


async def test_a_failed_connection_names_the_server_and_the_setting() -> None:
    driver = MySQLDriver(dsn="mysql://app:hunter2@127.0.0.1:1/app")
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the client's own error type
        await driver.connect()
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "MySQL at mysql://app:***@127.0.0.1:1/app" in notes
    assert "ASYNCTASQ_MYSQL_DSN" in notes and "hunter2" not in notes
