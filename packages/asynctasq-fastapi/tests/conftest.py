"""Each test starts unconfigured, without ASYNCTASQ_* variables, and leaves it so."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import asynctasq.config as config_module


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("ASYNCTASQ_") and not name.startswith("ASYNCTASQ_TEST_"):
            monkeypatch.delenv(name)
    saved = config_module.configured()
    config_module.reset_config()
    yield
    config_module.use_config(saved)
