"""The decorator that raises core's `SchemaNotInitializedError` in place of asyncpg's
"relation does not exist"."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncpg

from asynctasq.errors import SchemaNotInitializedError
from asynctasq_postgres.naming import TableNames


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
                f"{names.schema}.{names.queue_table}", str(exc)
            ) from exc

    return wrapper
