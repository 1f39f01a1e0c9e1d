"""Every serializer test runs with its own registry, no installed plugins and no import guard."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asynctasq.serializer import isolated_registry, set_import_guard
from asynctasq.serializer import plugins as serializer_plugins


@pytest.fixture(autouse=True)
def _isolated_serializer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Plugins installed in the workspace (ORM packages) must not leak into these tests;
    # tests that need entry points patch the seam again.
    monkeypatch.setattr(serializer_plugins, "_entry_points", list)
    previous_guard = set_import_guard(None)
    try:
        with isolated_registry(empty=True):
            yield
    finally:
        set_import_guard(previous_guard)
