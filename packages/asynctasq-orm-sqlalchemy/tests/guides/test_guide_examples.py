"""The SQLAlchemy examples of both user guides run unchanged against PostgreSQL.

Only the connection URL is substituted (a database of the test's own, created and dropped
here). A harness in a separate process creates the tables and rows the example's ``main()``
fetches, runs it, changes the rows, and runs a worker: the tasks must print the new values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripts.spec_guides import guide_blocks, spec_dir
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[4]
SPEC = spec_dir(ROOT)
GUIDE_URL = "postgresql+asyncpg://user:pass@localhost/db"
PG_DSN = os.environ.get("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def examples(word: str) -> list[tuple[str, int, str]]:
    """(guide, index, code) of every python block of the guides that mentions ``word``."""
    return [(b.guide, b.index, b.code) for b in guide_blocks(SPEC) if word in b.code]


EXAMPLES = examples("sqlalchemy")


def test_guides_have_sqlalchemy_examples() -> None:
    if not EXAMPLES and not os.environ.get("CI"):
        pytest.skip(f"guides not found at {SPEC}")
    assert len(EXAMPLES) == 2
    assert all(GUIDE_URL in code for _, _, code in EXAMPLES)


def _admin(sql: str) -> None:
    import asyncio

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
    """A fresh database (the examples use fixed table names); its SQLAlchemy URL."""
    name = f"aq_guides_{uuid.uuid4().hex[:10]}"
    try:
        _admin(f"CREATE DATABASE {name}")
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {make_url(PG_DSN).host}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = make_url(PG_DSN).set(drivername="postgresql+asyncpg", database=name)
    yield url.render_as_string(hide_password=False)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("guide", "index", "code"), EXAMPLES, ids=[f"{g.split('-')[0]}-{i}" for g, i, _ in EXAMPLES]
)
def test_example_runs_and_tasks_see_fresh_rows(
    guide: str, index: int, code: str, database: str, tmp_path: Path
) -> None:
    module = f"guide_sqlalchemy_{index}"
    (tmp_path / f"{module}.py").write_text(code.replace(GUIDE_URL, database))
    report = tmp_path / "report.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")},
        "ASYNCTASQ_DRIVER": "memory",
        "ASYNCTASQ_MEMORY_NAMESPACE": "guides",
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("harness.py")), tmp_path, module, report],
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
    assert result["dispatched"] == result["succeeded"] == 2, output
    assert "Sending welcome email to fresh@example.com (ID: 1)" in proc.stdout, output
    assert "Processing order 100 for user Ada Fresh" in proc.stdout, output
