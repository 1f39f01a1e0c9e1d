"""`asynctasq.drivers.<name>_driver` re-exports each first-party driver or says what to install."""

from __future__ import annotations

import importlib
import sys

import pytest

from asynctasq.errors import MissingDependencyError

SHIMS = {
    "redis": ("RedisDriver", "asynctasq_redis"),
    "postgres": ("PostgresDriver", "asynctasq_postgres"),
    "mysql": ("MySQLDriver", "asynctasq_mysql"),
    "sqs": ("SQSDriver", "asynctasq_sqs"),
    "rabbitmq": ("RabbitMQDriver", "asynctasq_rabbitmq"),
    "sqlite": ("SqliteDriver", "asynctasq_sqlite"),
}


@pytest.mark.parametrize("name", sorted(SHIMS))
def test_shim_reexports_the_driver_class(name: str) -> None:
    cls_name, package = SHIMS[name]
    pytest.importorskip(package)
    shim = importlib.import_module(f"asynctasq.drivers.{name}_driver")
    assert getattr(shim, cls_name) is getattr(importlib.import_module(package), cls_name)


@pytest.mark.parametrize("name", sorted(SHIMS))
def test_shim_names_the_package_to_install(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, package = SHIMS[name]
    monkeypatch.setitem(sys.modules, package, None)  # what Python does for a missing module
    monkeypatch.delitem(sys.modules, f"asynctasq.drivers.{name}_driver", raising=False)
    with pytest.raises(MissingDependencyError, match=f"pip install asynctasq-{name}"):
        importlib.import_module(f"asynctasq.drivers.{name}_driver")


def test_capability_advice_is_asked_of_the_installed_driver_classes() -> None:
    from asynctasq.drivers.base import ResultStore, StatusStore
    from asynctasq.drivers.registry import drivers_with, use_one_of

    # The workspace installs every first-party driver: SQS and RabbitMQ keep no results.
    assert drivers_with(ResultStore) == ["memory", "mysql", "postgres", "redis", "sqlite"]
    assert use_one_of(StatusStore) == "use a driver that can (mysql, postgres, redis, sqlite)"

    class Nothing:
        pass

    assert use_one_of(Nothing) == "no installed driver can: install one that does"
