"""The cross-package tests' servers: each ``ASYNCTASQ_TEST_*`` variable is resolved here, at
import, before any test module reads it (the variable, else the local server, else a container
when Docker answers; see `server_choice`). xdist's controller imports this before it starts its
workers, so they and the workers' subprocesses share one container per service."""

from __future__ import annotations

from tests.server_choice import TEST_URLS, server_url

for _service in TEST_URLS:
    server_url(_service)
