"""The HTTP server beside a worker: ``/metrics``, ``/healthz`` and ``/readyz``.

It runs in a thread of its own (prometheus_client's threaded WSGI server), so a scrape
never waits for the worker's event loop, and a blocked event loop is seen as one.
``/healthz`` and ``/readyz`` answer 200 with ``ok`` or 503 with the reason, one line of
plain text; any other path is 404.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

Probe = Callable[[], str | None]
"""Returns None when the check passes, else why it does not (one line)."""

StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _probe_response(start_response: StartResponse, why: str | None) -> list[bytes]:
    status = "200 OK" if why is None else "503 Service Unavailable"
    body = ("ok" if why is None else why).encode("utf-8", "replace") + b"\n"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [body]


def make_app(registry: CollectorRegistry, alive: Probe, ready: Probe) -> Callable[..., Any]:
    """The WSGI application: metrics from `registry`, the two probes."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _probe_response(start_response, alive())
        if path == "/readyz":
            return _probe_response(start_response, ready())
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics, /healthz or /readyz\n"]

    return app


class MetricsServer:
    """Serves `make_app` on `host`:`port` from a daemon thread until `close`.

    Args:
        host: The address to bind (``127.0.0.1``: this host only; ``0.0.0.0``: every
            interface).
        port: The port (0: any free one, see `port` afterwards).
        registry: The metrics to serve.
        alive: The liveness check.
        ready: The readiness check.

    Raises:
        OSError: the address cannot be bound (in use, not local, no permission).
    """

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, alive: Probe, ready: Probe
    ) -> None:
        self._server = make_server(
            host,
            port,
            make_app(registry, alive, ready),
            ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="asynctasq-metrics-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


__all__ = ["MetricsServer", "Probe", "make_app"]
