"""Helpers for the lifecycle commands' tests (on sys.path through conftest; not collected)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import Result

from asynctasq.config import set_global_config
from asynctasq.core.task import BaseTask
from asynctasq.drivers.connections import close_drivers


def dispatch(db: Path, *tasks: BaseTask[Any]) -> list[str]:
    """Dispatch `tasks` to the SQLite file `db` (tracked ones get their first record); ids.

    The configured driver becomes that file for the rest of the test (the test's
    configuration is reset after it).
    """
    set_global_config(driver="sqlite", sqlite={"path": str(db)})

    async def send() -> list[str]:
        try:
            return [str(await t.dispatch()) for t in tasks]
        finally:
            await close_drivers()

    return asyncio.run(send())


def as_json(result: Result) -> Any:
    """What a ``--json`` command printed (it must have succeeded)."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
