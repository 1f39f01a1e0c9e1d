"""Fixtures: Django configured for the real PostgreSQL server, tables of this run's own.

The server URL comes from ``ASYNCTASQ_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Unreachable: tests skip, or fail under ``CI``.
Django is configured here, before anything imports a model, as a worker's setup module does.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django
import pytest
from django.conf import settings

import asynctasq.config as config_module
from asynctasq.config import set_global_config
from asynctasq.serializer import get_import_guard, set_import_guard
from asynctasq.testing import MemoryDriver

PG_DSN = os.environ.get("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def database_settings(dsn: str) -> dict[str, Any]:
    """Django's DATABASES entry for a ``postgresql://`` DSN."""
    url = urlsplit(dsn)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.hostname or "",
        "PORT": str(url.port or 5432),
    }


sys.path.insert(0, str(Path(__file__).parent))
# Tables of this pytest process's own: xdist workers would otherwise inherit the
# controller's suffix and share (and drop) each other's tables. Children started by the
# tests inherit this value, so they name the same tables.
os.environ["ASYNCTASQ_DJ_TEST_SUFFIX"] = uuid.uuid4().hex[:8]
if not settings.configured:
    settings.configure(
        DATABASES={"default": database_settings(PG_DSN)},
        INSTALLED_APPS=["dj_testapp"],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()

from dj_testapp import models, tasks  # noqa: E402

_server: dict[str, str | None] = {}


def _create_tables() -> None:
    from django.db import connection

    with connection.schema_editor() as editor:
        for model in models.MODELS:
            editor.create_model(model)


def _drop_tables() -> None:
    from django.db import connection

    with connection.schema_editor() as editor:
        for model in reversed(models.MODELS):
            editor.delete_model(model)
    connection.close()


@pytest.fixture(scope="session")
def database() -> Iterator[None]:
    """The test tables on the server (created once, dropped at the end)."""
    try:
        _create_tables()
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {urlsplit(PG_DSN).hostname}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    yield
    _drop_tables()


@pytest.fixture
def db(database: None) -> Iterator[None]:
    """Empty tables for each test."""
    yield
    from django.db import connection

    for model in models.MODELS:
        model._default_manager.all().delete()
    connection.close()


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The memory driver with a namespace of its own; the import guard restored after."""
    for name in list(os.environ):
        if name.startswith("ASYNCTASQ_") and name != "ASYNCTASQ_DJ_TEST_SUFFIX":
            monkeypatch.delenv(name)
    saved, guard = config_module.configured(), get_import_guard()
    set_import_guard(None)  # from a known state, whatever ran before in this process
    namespace = f"dj-{uuid.uuid4().hex[:8]}"
    config_module.reset_config()
    set_global_config(driver="memory", memory={"namespace": namespace})
    tasks.seen.clear()
    try:
        yield namespace
    finally:  # a test that set the import guard leaves none behind, whatever happened
        config_module.use_config(saved)
        set_import_guard(guard)


@pytest.fixture
def memory(_isolated_config: str) -> MemoryDriver:
    """The in-memory driver the tasks are dispatched to."""
    return MemoryDriver(namespace=_isolated_config)
