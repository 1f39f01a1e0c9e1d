"""Where the tests find a server: the local one, a throw-away container, or nowhere.

A contributor's machine often has Docker but none of the servers the tests use. The choice:

1. the server answers at its URL (``ASYNCTASQ_TEST_*``, loopback by default): use it;
2. it does not, and Docker answers: start one in a container (testcontainers, imported only
   then, so machines with local servers never need it);
3. neither: the tests skip with the reason (fail under ``CI``).

`choose` is pure (probes are passed in), so the choice is unit-tested without Docker;
`start_container` is the one place that touches testcontainers. `server_url` is what the
conftests call: an explicit ``ASYNCTASQ_TEST_*`` variable wins untouched; otherwise the
choice is made once per process and a container's URL is exported to the variable, so
subprocesses and pytest-xdist workers started afterwards use that container instead of
starting their own (xdist's controller loads the conftests of the paths it is given before
it starts the workers, so ``make test`` runs one container per service). A process that
resolves on its own starts its own container; each is stopped when its process exits.
"""

from __future__ import annotations

import atexit
import os
import socket
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

DEFAULT_PORTS = {"redis": 6379, "postgresql": 5432, "mysql": 3306, "amqp": 5672}

IMAGES = {
    "redis": "redis:7-alpine",
    "postgres": "postgres:16-alpine",
    "mysql": "mariadb:11",
    "rabbitmq": "rabbitmq:3-alpine",
}
"""The image a container of each service runs."""

TEST_URLS = {
    "redis": ("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "postgres": ("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": ("ASYNCTASQ_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test"),
    "rabbitmq": ("ASYNCTASQ_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
}
"""Each service's variable and the local server's URL used when the variable is unset."""


@dataclass(frozen=True, slots=True)
class Choice:
    """Where a service's tests go: ``local`` (the URL answers), ``container`` or
    ``unavailable`` (skip, or fail under CI), with the reason in words."""

    kind: Literal["local", "container", "unavailable"]
    reason: str


def choose(
    service: str,
    url: str,
    *,
    reachable: Callable[[str], bool],
    docker: Callable[[], bool],
) -> Choice:
    """Pick where `service`'s tests run; `reachable(url)` and `docker()` are the probes."""
    if service not in IMAGES:
        raise ValueError(f"unknown service {service!r}; known: {', '.join(IMAGES)}")
    if reachable(url):
        return Choice("local", f"{service} answers at {url}")
    if docker():
        return Choice("container", f"{service} does not answer at {url}; Docker does: a container")
    return Choice(
        "unavailable",
        f"{service} does not answer at {url} and Docker is not available: start it "
        "(bash scripts/services.sh) or point ASYNCTASQ_TEST_* at one",
    )


def resolve(
    service: str,
    *,
    environ: MutableMapping[str, str],
    reachable: Callable[[str], bool],
    docker: Callable[[], bool],
    start: Callable[[str], str],
) -> str:
    """The URL `service`'s tests use: the variable when set, else the local server's when it
    answers, else a container's (`start(service)`, its URL written to the variable), else
    the local URL, whose fixtures then skip (or fail under CI) saying it does not answer."""
    if service not in TEST_URLS:
        raise ValueError(f"unknown service {service!r}; known: {', '.join(TEST_URLS)}")
    variable, local = TEST_URLS[service]
    explicit = environ.get(variable)
    if explicit:
        return explicit
    if choose(service, local, reachable=reachable, docker=docker).kind != "container":
        return local
    url = start(service)
    environ[variable] = url
    return url


_running = ExitStack()
atexit.register(_running.close)


def _start_for_this_process(service: str) -> str:
    return _running.enter_context(start_container(service))


def server_url(service: str) -> str:
    """`resolve` with the real probes; a container started here lives until the process exits."""
    return resolve(
        service,
        environ=os.environ,
        reachable=tcp_reachable,
        docker=docker_available,
        start=_start_for_this_process,
    )


def tcp_reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at `url`'s host and port."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.split("+")[0], 0)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout):
            return True
    except OSError:
        return False


def docker_available(environ: dict[str, str] | None = None) -> bool:
    """Whether a Docker daemon answers (``DOCKER_HOST`` when it is a unix socket, else the
    default socket). A TCP ``DOCKER_HOST`` is trusted as given."""
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(host.removeprefix("unix://"))
        except OSError:
            return False
    return True


@contextmanager
def start_container(service: str) -> Iterator[str]:
    """Run `service` in a container for the duration; yields its URL in the tests' form."""
    try:
        import testcontainers  # noqa: F401  (only this branch needs it)
    except ImportError as exc:
        raise RuntimeError(
            f"{service} is not reachable and Docker is: install testcontainers "
            "(uv sync --all-packages) to let the tests start it"
        ) from exc
    with warnings.catch_warnings():
        # testcontainers deprecates its own internals (RabbitMQ's readiness decorator) at
        # import and start; the suite turns warnings into errors, and these are not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        container, url = _container(service)
        container.start()
    try:
        yield url(container)
    finally:
        container.stop()


def _container(service: str) -> tuple[Any, Callable[[Any], str]]:
    image = IMAGES[service]
    if service == "redis":
        from testcontainers.community.redis import RedisContainer

        def redis_url(c: Any) -> str:
            return f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/15"

        return RedisContainer(image), redis_url
    if service == "postgres":
        from testcontainers.community.postgres import PostgresContainer

        def postgres_url(c: Any) -> str:
            return str(c.get_connection_url(driver=None))

        return PostgresContainer(image, username="postgres", dbname="test"), postgres_url
    if service == "mysql":
        from testcontainers.community.mysql import MySqlContainer

        def mysql_url(c: Any) -> str:
            port = c.get_exposed_port(3306)
            return f"mysql://root:{c.root_password}@{c.get_container_host_ip()}:{port}/test"

        return MySqlContainer(image, dbname="test"), mysql_url
    from testcontainers.community.rabbitmq import RabbitMqContainer

    def rabbitmq_url(c: Any) -> str:
        return f"amqp://guest:guest@{c.get_container_host_ip()}:{c.get_exposed_port(5672)}/"

    return RabbitMqContainer(image), rabbitmq_url
