"""How to reach Redis: the connection settings and the redis-py client built from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from asynctasq.redaction import redact_url
from asynctasq_redis._pool import WaitingConnectionPool

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that select Redis Cluster, and the plain scheme redis-py is given instead."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Everything needed to build a client; see `RedisDriver` for what each one means."""

    url: str
    password: str | None
    username: str | None
    db: int
    max_connections: int
    cluster: bool
    socket_timeout: float | None
    socket_connect_timeout: float | None
    health_check_interval: float
    retry_attempts: int
    pool_timeout: float | None
    client_name: str | None
    ssl: bool
    ssl_ca_certs: str | None
    ssl_ca_path: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_password: str | None
    ssl_cert_reqs: str
    ssl_check_hostname: bool

    def resolved(self) -> tuple[str, bool, bool]:
        """The URL redis-py understands, whether it is a cluster, whether TLS is on."""
        scheme, sep, rest = self.url.partition("://")
        if not sep:
            shown = redact_url(self.url)
            raise ValueError(f"Redis URL needs a scheme (redis://, rediss://, ...): {shown!r}")
        cluster = self.cluster
        if scheme in CLUSTER_SCHEMES:
            scheme, cluster = CLUSTER_SCHEMES[scheme], True
        return f"{scheme}://{rest}", cluster, self.ssl or scheme == "rediss"


def _common_kwargs(settings: ConnectionSettings, tls: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "health_check_interval": settings.health_check_interval,
        # A few quick retries recover pooled connections that died with a server restart;
        # a real outage then surfaces as ConnectionError for the worker to back off on. A
        # timeout is not retried: a fresh connection does not help a server that does not
        # answer, and redis-py retries the connect handshake inside each retry of the
        # command, so a silent server cost (retries + 1) ** 2 socket timeouts (80 s).
        "retry": Retry(
            ExponentialWithJitterBackoff(cap=0.5, base=0.05),
            settings.retry_attempts,
            supported_errors=(RedisConnectionError,),
        ),
        "max_connections": settings.max_connections,
        "decode_responses": False,
    }
    # URL credentials win over these (redis-py gives URL options precedence).
    if settings.password is not None:
        kwargs["password"] = settings.password
    if settings.username is not None:
        kwargs["username"] = settings.username
    if settings.client_name is not None:
        kwargs["client_name"] = settings.client_name
    if tls:
        kwargs.update(
            ssl_ca_certs=settings.ssl_ca_certs,
            ssl_ca_path=settings.ssl_ca_path,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
            ssl_password=settings.ssl_password,
            ssl_cert_reqs=settings.ssl_cert_reqs,
            ssl_check_hostname=settings.ssl_check_hostname,
        )
    return kwargs


def build_client(settings: ConnectionSettings) -> Redis | RedisCluster:
    """A standalone or cluster client; it opens connections on first use, not here."""
    url, cluster, tls = settings.resolved()
    kwargs = _common_kwargs(settings, tls)
    if cluster:
        if tls:
            kwargs["ssl"] = True
        return RedisCluster.from_url(url, **kwargs)
    kwargs["db"] = settings.db
    kwargs["timeout"] = settings.pool_timeout
    if tls:
        kwargs["connection_class"] = SSLConnection
    pool = WaitingConnectionPool.from_url(url, **kwargs)
    return Redis.from_pool(pool)
