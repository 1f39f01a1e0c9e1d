"""docs/operations/observability.md: the health-file exec probes, run as the kubelet would
against real worker processes on SQLite, with one worker and with ``--workers 2``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

PAGE = Path(__file__).resolve().parents[1] / "docs" / "operations" / "observability.md"
SCRIPT = Path(sys.executable).with_name("asynctasq")
DOC_PATH = "/tmp/asynctasq.health"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SCRIPT.exists(), reason=f"{SCRIPT} is not installed"),
]


def exec_probes() -> list[dict[str, Any]]:
    """The page's YAML blocks with exec probes, in order (one worker, then several)."""
    found = []
    for body in re.findall(r"^```yaml\n(.*?)^```", PAGE.read_text(), re.M | re.S):
        doc = yaml.safe_load(body)
        if "exec" in doc.get("livenessProbe", {}):
            found.append(doc)
    return found


def passes(probe: dict[str, Any], health: Path) -> bool:
    command = [part.replace(DOC_PATH, str(health)) for part in probe["exec"]["command"]]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


@contextmanager
def worker(tmp_path: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
    command = [str(SCRIPT), "worker", "--driver", "sqlite", "-o", f"path={tmp_path / 'q.db'}"]
    command += ["--no-live", *args]
    with (tmp_path / "worker.log").open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def wait_for(check: Any, within: float, log: Path) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_documented_exec_probes_pass_while_the_workers_run(
    tmp_path: Path, workers: int
) -> None:
    single, several = exec_probes()
    probes = single if workers == 1 else several
    health = tmp_path / "asynctasq.health"
    extra = ["--workers", str(workers)] if workers > 1 else []
    with worker(tmp_path, "--health-file", str(health), *extra):
        for name in ("livenessProbe", "readinessProbe"):
            wait_for(lambda name=name: passes(probes[name], health), 60, tmp_path / "worker.log")
        if workers > 1:  # the probes for one worker would fail here: there is no PATH
            assert not passes(single["livenessProbe"], health)
    for name in ("livenessProbe", "readinessProbe"):
        assert not passes(probes[name], health)  # the files are removed on exit
