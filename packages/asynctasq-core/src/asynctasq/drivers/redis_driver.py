"""Stable import path for the redis driver, which lives in the `asynctasq-redis` package."""

from asynctasq.drivers._shim import require

RedisDriver = require("asynctasq_redis", "RedisDriver", "asynctasq-redis")

__all__ = ["RedisDriver"]
