"""Who is compared: one `Contender` per framework and broker."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

REDIS_URL = os.environ.get("ASYNCTASQ_BENCH_PEERS_REDIS_URL", "redis://127.0.0.1:6379/12")
PG_SERVER = os.environ.get("ASYNCTASQ_BENCH_PEERS_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "asynctasq_bench_peers"
PG_DSN = f"{PG_SERVER}/{PG_DATABASE}"
AMQP_URL = os.environ.get("ASYNCTASQ_BENCH_PEERS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RABBIT_PREFIX = "bench-peers-"
RABBIT_EXCHANGE = "bench-peers"

PEER_PACKAGES: dict[str, tuple[str, ...]] = {
    "arq": ("arq==0.28.0",),
    "saq": ("saq[redis,hiredis]==0.26.4", "typing_extensions"),
    "taskiq": ("taskiq==0.13.0", "taskiq-redis==1.2.4"),
    "dramatiq": ("dramatiq[redis,rabbitmq]==2.2.1",),
    "celery": ("celery[redis]==5.7.0",),
    "procrastinate": ("procrastinate==3.10.0", "psycopg[binary]"),
    "asynctasq-1.7": ("asynctasq[redis]==1.7.0",),
}
"""Pinned peer releases, each installed in ``.bench/peers/<name>``."""

PEER_PYTHON: dict[str, str] = {"asynctasq-1.7": "3.12"}
"""Peers whose pins need another Python than the default 3.11 (upstream asynctasq 1.7
requires 3.12 or later)."""

UNAVAILABLE = {
    "asynctasq 1.7 (upstream, PyPI)": "this comparison has no app for it; the scaling run "
    "below measures it on Redis (pinned `asynctasq[redis]==1.7.0`, Python 3.12)",
}
"""Peers asked for that could not run here, with the reason (printed in the report)."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One framework on one broker.

    Attributes:
        framework: ``asynctasq`` or a key of `PEER_PACKAGES`.
        broker: ``redis``, ``postgres``, ``rabbitmq`` or ``sqlite``.
        app: The module in ``apps/`` that enqueues and defines the tasks.
        worker: The worker command; ``{bin}`` is the environment's ``bin`` directory.
        env: Extra environment for client and worker.
    """

    framework: str
    broker: str
    app: str
    worker: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.framework}/{self.broker}"

    @property
    def queue(self) -> str:
        return f"bench-{self.framework}"

    @property
    def url(self) -> str:
        return {"redis": REDIS_URL, "postgres": PG_DSN, "rabbitmq": AMQP_URL}.get(self.broker, "")

    @property
    def ours(self) -> bool:
        return self.framework == "asynctasq"


def _ours(broker: str, env: dict[str, str]) -> Contender:
    worker = (
        "{bin}/asynctasq", "worker", "--import", "asynctasq_app", "--queues", "bench-asynctasq",
        "--concurrency", "10", "--log-level", "warning", "--no-live",
    )  # fmt: skip
    return Contender(
        "asynctasq", broker, "asynctasq_app", worker, {"ASYNCTASQ_DRIVER": broker, **env}
    )


def _dramatiq(broker: str) -> Contender:
    worker = (
        "{bin}/dramatiq", "dramatiq_app", "--processes", "1", "--threads", "10",
        "--queues", "bench-dramatiq",
    )  # fmt: skip
    return Contender("dramatiq", broker, "dramatiq_app", worker)


def _celery(broker: str) -> Contender:
    worker = (
        "{bin}/celery", "-A", "celery_app", "worker", "--pool", "threads", "--concurrency", "10",
        "-Q", "bench-celery", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "WARNING",
    )  # fmt: skip
    return Contender("celery", broker, "celery_app", worker)


def all_contenders(sqlite_path: str) -> list[Contender]:
    """Every contender, grouped by broker, AsyncTasQ first in each group."""
    return [
        _ours("redis", {"ASYNCTASQ_REDIS_URL": REDIS_URL}),
        Contender("arq", "redis", "arq_app", ("{bin}/arq", "arq_app.WorkerSettings")),
        Contender("saq", "redis", "saq_app", ("{bin}/saq", "saq_app.settings")),
        Contender(
            "taskiq",
            "redis",
            "taskiq_app",
            (
                "{bin}/taskiq",
                "worker",
                "taskiq_app:broker",
                "--workers",
                "1",
                "--max-async-tasks",
                "10",
            ),
        ),
        _dramatiq("redis"),
        _celery("redis"),
        _ours(
            "postgres",
            {"ASYNCTASQ_POSTGRES_DSN": PG_DSN, "ASYNCTASQ_POSTGRES_AUTO_MIGRATE": "true"},
        ),
        Contender(
            "procrastinate",
            "postgres",
            "procrastinate_app",
            ("{bin}/python", "procrastinate_app.py", "worker", "0"),
        ),
        _ours(
            "rabbitmq",
            {
                "ASYNCTASQ_RABBITMQ_URL": AMQP_URL,
                "ASYNCTASQ_RABBITMQ_QUEUE_PREFIX": RABBIT_PREFIX,
                "ASYNCTASQ_RABBITMQ_EXCHANGE_NAME": RABBIT_EXCHANGE,
            },
        ),
        _dramatiq("rabbitmq"),
        _celery("rabbitmq"),
        _ours("sqlite", {"ASYNCTASQ_SQLITE_PATH": sqlite_path}),
    ]
