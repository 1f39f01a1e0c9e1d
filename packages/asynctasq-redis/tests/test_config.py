"""Core's configuration reaches RedisDriver's keywords (environment strings converted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asynctasq.config import ConfigWarning, init, reset_config
from asynctasq.drivers.connections import build_driver
from asynctasq.drivers.redis_driver import RedisDriver as ShimDriver
from asynctasq_redis import RedisDriver


@pytest.fixture
def clean_config(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Iterator[None]:
    for name in ("URL", "PASSWORD", "DB", "MAX_CONNECTIONS", "PREFIX", "SOCKET_TIMEOUT"):
        monkeypatch.delenv(f"ASYNCTASQ_REDIS_{name}", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    reset_config()
    yield
    reset_config()


def test_environment_variables_build_the_driver(
    clean_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCTASQ_REDIS_URL", "redis://cache:6380")
    monkeypatch.setenv("ASYNCTASQ_REDIS_PASSWORD", "pw")
    monkeypatch.setenv("ASYNCTASQ_REDIS_DB", "4")
    monkeypatch.setenv("ASYNCTASQ_REDIS_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("ASYNCTASQ_REDIS_SOCKET_TIMEOUT", "2.5")
    with pytest.warns(ConfigWarning, match="redis settings are given but no driver is chosen"):
        config = init()  # only a driver named in code (as here) uses them
    driver = build_driver("redis", config)
    assert isinstance(driver, RedisDriver)
    s = driver.settings
    assert (s.url, s.password, s.db, s.max_connections, s.socket_timeout) == (
        "redis://cache:6380", "pw", 4, 7, 2.5
    )  # fmt: skip


def test_init_mapping_builds_the_driver(clean_config: None) -> None:
    config = init({"driver": "redis", "redis": {"url": "redis+cluster://n1:7000", "prefix": "x"}})
    driver = build_driver(None, config)
    assert isinstance(driver, RedisDriver)
    assert driver.cluster
    assert driver.prefix == "x"


def test_core_shim_is_this_driver() -> None:
    assert ShimDriver is RedisDriver
