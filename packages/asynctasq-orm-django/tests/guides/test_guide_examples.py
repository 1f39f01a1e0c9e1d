"""The Django examples of both user guides run unchanged against PostgreSQL.

Each example becomes the ``models.py`` of an app (Django needs models in an installed app),
with a settings module and the worker setup module the README documents
(``asynctasq_setup``: ``DJANGO_SETTINGS_MODULE`` and ``django.setup()``). A harness in a
separate process imports the setup module first, creates tables and rows, runs ``main()``,
changes the rows and runs a worker: the tasks must print the new values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from scripts.spec_guides import guide_blocks, spec_dir

ROOT = Path(__file__).resolve().parents[4]
SPEC = spec_dir(ROOT)
PG_DSN = os.environ.get("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

SETUP_MODULE = """\
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guidesite_settings")
django.setup()
"""


def examples(word: str) -> list[tuple[str, int, str]]:
    """(guide, index, code) of every python block of the guides that mentions ``word``."""
    return [(b.guide, b.index, b.code) for b in guide_blocks(SPEC) if word in b.code]


EXAMPLES = examples("django")


def test_guides_have_django_examples() -> None:
    if not EXAMPLES and not os.environ.get("CI"):
        pytest.skip(f"guides not found at {SPEC}")
    assert len(EXAMPLES) == 2


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]  # DDL built from a generated name


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database for one example; its name."""
    name = f"aq_guides_{uuid.uuid4().hex[:10]}"
    try:
        _admin(f"CREATE DATABASE {name}")
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {urlsplit(PG_DSN).hostname}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _settings(database: str, app: str) -> str:
    url = urlsplit(PG_DSN)
    db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.hostname or "",
        "PORT": str(url.port or 5432),
    }
    return (
        f"DATABASES = {{'default': {db!r}}}\n"
        f"INSTALLED_APPS = [{app!r}]\n"
        "USE_TZ = True\n"
        "DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("guide", "index", "code"), EXAMPLES, ids=[f"{g.split('-')[0]}-{i}" for g, i, _ in EXAMPLES]
)
def test_example_runs_and_tasks_see_fresh_rows(
    guide: str, index: int, code: str, database: str, tmp_path: Path
) -> None:
    app = f"guideapp_{index}"
    (tmp_path / app).mkdir()
    (tmp_path / app / "__init__.py").write_text("")
    (tmp_path / app / "models.py").write_text(code)
    (tmp_path / "guidesite_settings.py").write_text(_settings(database, app))
    (tmp_path / "asynctasq_setup.py").write_text(SETUP_MODULE)
    report = tmp_path / "report.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")},
        "ASYNCTASQ_DRIVER": "memory",
        "ASYNCTASQ_MEMORY_NAMESPACE": "guides",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("harness.py")), tmp_path, app, report],
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
    assert "Sending welcome email to fresh@example.com" in proc.stdout, output
    assert "Updating Fresh Lamp to $99.99" in proc.stdout, output
