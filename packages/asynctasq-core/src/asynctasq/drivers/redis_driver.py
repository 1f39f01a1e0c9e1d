"""Stable import path for the redis driver, which lives in the `asynctasq-redis` package."""

from typing import TYPE_CHECKING

from asynctasq.drivers._shim import require

if TYPE_CHECKING:
    # Type checkers see the real class (and users get its signature); at run time the shim
    # imports it, or says which package to install.
    from asynctasq_redis import RedisDriver
else:
    RedisDriver = require("asynctasq_redis", "RedisDriver", "asynctasq-redis")

__all__ = ["RedisDriver"]
