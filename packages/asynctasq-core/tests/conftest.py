import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import asynctasq.config as config_module
from asynctasq.config import set_global_config
from asynctasq.testing import MemoryDriver

# Helper modules shared by several test modules (tests import in importlib mode).
SUPPORT = str(Path(__file__).resolve().parent / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)


@pytest.fixture(autouse=True)
def _isolated_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every test starts from the defaults with the memory driver and no ASYNCTASQ_* env."""
    import os

    for name in list(os.environ):
        if name.startswith("ASYNCTASQ_"):
            monkeypatch.delenv(name)
    saved = config_module.configured()
    config_module.reset_config()
    set_global_config(driver="memory")
    yield
    config_module.use_config(saved)


@pytest.fixture
async def memory() -> AsyncIterator[MemoryDriver]:
    driver = MemoryDriver()
    await driver.connect()
    yield driver
    await driver.close()
