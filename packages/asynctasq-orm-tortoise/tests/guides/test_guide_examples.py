"""The Tortoise examples of both user guides run unchanged against PostgreSQL.

Each example is written as a module next to the worker setup module the README documents
(``asynctasq_setup`` calling ``init_on_first_use``). A harness in a separate process runs
the dispatching side (tables, rows, ``main()``, then the rows change) and a worker that
initialises Tortoise lazily: the tasks must print the new values.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from scripts.spec_guides import guide_blocks, spec_dir

ROOT = Path(__file__).resolve().parents[4]
SPEC = spec_dir(ROOT)
PG_DSN = os.environ.get("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def examples(word: str) -> list[tuple[str, int, str]]:
    """(guide, index, code) of every python block of the guides that mentions ``word``."""
    return [(b.guide, b.index, b.code) for b in guide_blocks(SPEC) if word in b.code]


EXAMPLES = examples("tortoise")


def test_guides_have_tortoise_examples() -> None:
    if not EXAMPLES and not os.environ.get("CI"):
        pytest.skip(f"guides not found at {SPEC}")
    assert len(EXAMPLES) == 2


def _admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database (the examples' tables have fixed names); its Tortoise URL."""
    name = f"aq_guides_{uuid.uuid4().hex[:10]}"
    try:
        _admin(f"CREATE DATABASE {name}")
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {urlsplit(PG_DSN).hostname}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = urlsplit(PG_DSN)
    yield urlunsplit(("postgres", url.netloc, f"/{name}", "", ""))
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("guide", "index", "code"), EXAMPLES, ids=[f"{g.split('-')[0]}-{i}" for g, i, _ in EXAMPLES]
)
def test_example_runs_and_tasks_see_fresh_rows(
    guide: str, index: int, code: str, database: str, tmp_path: Path
) -> None:
    module = f"guide_tortoise_{index}"
    (tmp_path / f"{module}.py").write_text(code)
    (tmp_path / "asynctasq_setup.py").write_text(
        "from asynctasq_orm_tortoise import init_on_first_use\n\n"
        f"init_on_first_use(db_url={database!r}, modules={{'models': [{module!r}]}})\n"
    )
    report = tmp_path / "report.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")},
        "ASYNCTASQ_DRIVER": "memory",
        "ASYNCTASQ_MEMORY_NAMESPACE": "guides",
    }
    harness = str(Path(__file__).with_name("harness.py"))
    proc = subprocess.run(
        [sys.executable, harness, tmp_path, module, database, report],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    result = json.loads(report.read_text())
    assert result["dead"] == [], output
    assert result["dispatched"] == result["succeeded"] == 1, output
    assert "New post 'Fresh Title' by Ada Fresh" in proc.stdout, output
