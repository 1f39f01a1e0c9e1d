"""The package's entry points: the driver only (`asynctasq migrate` serves its schema)."""

from __future__ import annotations

from importlib.metadata import distribution, entry_points

from asynctasq.drivers.base import SchemaManager
from asynctasq_postgres import PostgresDriver


def test_the_driver_is_registered() -> None:
    [driver] = entry_points(group="asynctasq.drivers", name="postgres")
    assert driver.value == "asynctasq_postgres:PostgresDriver"
    assert driver.load() is PostgresDriver


def test_no_cli_of_its_own_and_no_typer() -> None:
    assert not entry_points(group="asynctasq.cli", name="postgres")
    requires = distribution("asynctasq-postgres").requires or []
    assert not [r for r in requires if r.split(";")[0].strip().startswith("typer")]


def test_the_driver_is_a_schema_manager() -> None:
    assert isinstance(PostgresDriver(), SchemaManager)
