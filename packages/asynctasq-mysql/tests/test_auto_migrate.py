"""Without ``auto_migrate``, missing tables raise core's `SchemaNotInitializedError`,
naming both fixes (the default, on, is tested in test_schema)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import asynctasq_mysql
from asynctasq.errors import SchemaNotInitializedError
from asynctasq_mysql import MySQLDriver


async def test_without_it_missing_tables_name_both_fixes(
    make_driver: Callable[..., MySQLDriver], table_names: dict[str, str]
) -> None:
    driver = make_driver(auto_migrate=False)
    with pytest.raises(SchemaNotInitializedError) as caught:
        await driver.connect()
    text = str(caught.value)
    assert table_names["queue"] in text
    assert "`asynctasq migrate`" in text and "auto_migrate=True" in text
    assert asynctasq_mysql.SchemaNotInitializedError is SchemaNotInitializedError
