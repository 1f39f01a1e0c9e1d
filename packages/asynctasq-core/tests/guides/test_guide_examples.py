"""Every runnable code example of both user guides runs unchanged on the in-memory driver.

The guides configure Redis (``init({'driver': 'redis'})``); the only substitution is that
driver name, to ``memory``. Each example runs in its own process as a script; then a worker
runs what it dispatched. Examples that need a server or an ORM database are tested with
their drivers' packages; fragments that use ``await`` outside a function are not programs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from scripts.spec_guides import guide_blocks, spec_dir

pytestmark = pytest.mark.slow  # its examples take a minute or more together

ROOT = Path(__file__).resolve().parents[4]
SPEC = spec_dir(ROOT)
HARNESS = Path(__file__).with_name("harness.py")

# An ORM's examples are run by its package's tests/guides/test_guide_examples.py;
# tests/test_guide_coverage.py checks each one left here is run there.
NEEDS_ELSEWHERE = {
    "sqlalchemy": "ORM example: run by asynctasq-orm-sqlalchemy/tests/guides",
    "django": "ORM example: run by asynctasq-orm-django/tests/guides",
    "tortoise": "ORM example: run by asynctasq-orm-tortoise/tests/guides",
    "custom-host": "connects to a Redis host that does not exist here",
}
# Errors that mean *we* failed; an example's task may still fail on its own placeholder code
# (a helper the guide leaves undefined, a URL that cannot be reached from here).
FRAMEWORK_ERRORS = (
    "asynctasq.errors.",
    "asynctasq.serializer.",
)


def _examples() -> list[tuple[str, int, str]]:
    """(guide, index, code) for each python block.

    A block without a single import continues the one before it (the guide shows the next
    lines of the same file), so it runs after that block, as a reader's file would.
    """
    found = []
    previous: dict[str, str] = {}
    for block in guide_blocks(SPEC):
        has_import = re.search(r"^(from|import) ", block.code, re.M) is not None
        code = block.code if has_import else previous.get(block.guide, "") + "\n" + block.code
        found.append((block.guide, block.index, code))
        if has_import:
            previous[block.guide] = block.code
    return found


EXAMPLES = _examples()


def _substitute(code: str) -> str:
    code = code.replace("init({'driver': 'redis'})", "init({'driver': 'memory'})")
    return code.replace("set_global_config(driver='redis')", "set_global_config(driver='memory')")


def test_guides_are_present() -> None:
    if not EXAMPLES and not os.environ.get("CI"):
        pytest.skip(f"guides not found at {SPEC}")
    assert len(EXAMPLES) > 60


@dataclass
class Outcome:
    skipped: str | None = None
    returncode: int = 0
    output: str = ""
    report: dict[str, Any] = field(default_factory=dict)


FRAGMENT = "a fragment (await outside a function), not a program"


def skip_reason(code: str) -> str | None:
    """Why core does not run this example (None: it runs it). A fragment is one whatever it
    names; then an example naming an ORM is left to that ORM's package."""
    try:
        compile(code, "<example>", "exec")
    except SyntaxError as exc:
        if "outside" in str(exc):
            return FRAGMENT
        return None  # runs, and fails as not compiling
    return next((reason for word, reason in NEEDS_ELSEWHERE.items() if word in code), None)


def _run_example(guide: str, index: int, code: str, workdir: Path) -> Outcome:
    reason = skip_reason(code)
    if reason is not None:
        return Outcome(skipped=reason)
    try:
        compile(code, f"{guide}[{index}]", "exec")
    except SyntaxError as exc:
        return Outcome(returncode=-1, output=f"does not compile: {exc}")
    workdir.mkdir(parents=True)
    example = workdir / f"guide_example_{index}.py"
    example.write_text(_substitute(code))
    report = workdir / "report.json"
    env = {
        **os.environ,
        "ASYNCTASQ_DRIVER": "memory",
        "ASYNCTASQ_MEMORY_NAMESPACE": "guides",
        # Examples call real URLs (example.com); send that traffic to a closed loopback port.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    proc = subprocess.run(
        [sys.executable, str(HARNESS), str(example), str(report)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return Outcome(None, proc.returncode, proc.stdout + proc.stderr, data)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Outcome]:
    """Runs every example once, several at a time (each is its own process)."""
    root = tmp_path_factory.mktemp("guides")
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {
            (g, i): pool.submit(_run_example, g, i, code, root / f"{g[:5]}-{i}")
            for g, i, code in EXAMPLES
        }
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.timeout(600)  # the first test pays for running all examples
@pytest.mark.parametrize(
    ("guide", "index"),
    [(g, i) for g, i, _ in EXAMPLES],
    ids=[f"{g.split('-')[0]}-{i}" for g, i, _ in EXAMPLES],
)
def test_example_runs(guide: str, index: int, outcomes: dict[tuple[str, int], Outcome]) -> None:
    outcome = outcomes[(guide, index)]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.returncode == 0, f"example failed:\n{outcome.output}"
    result = outcome.report
    ours = [d for d in result.get("dead", []) if d[0].startswith(FRAMEWORK_ERRORS)]
    assert ours == [], f"framework errors: {ours}\n{outcome.output}"
    if result["ready"]:  # something was due now (not only delayed): the worker ran it
        assert result["succeeded"] + result["retried"] + len(result["dead"]) >= 1, result
