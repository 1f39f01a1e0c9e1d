"""The error for tables that are missing or older than the driver, and the decorator that
raises it in place of asyncpg's "relation does not exist"."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncpg

from asynctasq_postgres.naming import TableNames


class SchemaNotInitializedError(RuntimeError):
    """The queue tables do not exist: run the migrations first."""


class _Named(Protocol):
    _names: TableNames


_D = TypeVar("_D", bound=_Named)
_P = ParamSpec("_P")
_T = TypeVar("_T")


def explain_missing_schema(
    method: Callable[Concatenate[_D, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_D, _P], Coroutine[Any, Any, _T]]:
    """Turn "relation does not exist" (and "column does not exist": tables older than the
    driver) into an error that says how to create or upgrade the tables."""

    @functools.wraps(method)
    async def wrapper(driver: _D, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await method(driver, *args, **kwargs)
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
            names = driver._names
            raise SchemaNotInitializedError(
                f"{driver._names.schema}.{driver._names.queue_table} is not set up (or "
                "not upgraded to this driver's schema version): run "
                "`asynctasq migrate` or `await driver.init_schema()` "
                f"(or pass auto_migrate=True) [{exc}]"
            ) from exc

    return wrapper
