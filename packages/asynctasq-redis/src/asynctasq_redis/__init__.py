"""AsyncTasQ's Redis driver: leased at-least-once delivery, standalone or Redis Cluster.

Usage::

    from asynctasq_redis import RedisDriver

    driver = RedisDriver(url="redis://localhost:6379", prefix="asynctasq")
"""

from asynctasq_redis.driver import RedisDriver

__all__ = ["RedisDriver"]
