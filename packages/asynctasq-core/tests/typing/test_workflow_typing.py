"""Workflows are typed: a chain by its last step, a group as a list, a chord by its callback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.timeout(300)
def test_mypy_types_workflows_by_their_last_step() -> None:
    source = HERE / "workflow_usage.py"
    expected = {i for i, line in enumerate(source.read_text().splitlines(), 1) if "# E:" in line}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--config-file",
            "/dev/null",
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    flagged = {int(m) for m in re.findall(r"workflow_usage\.py:(\d+): error", proc.stdout)}
    assert flagged == expected, proc.stdout
