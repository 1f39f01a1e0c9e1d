"""``asynctasq worker`` stopped by SIGTERM while it starts (its task modules import, the
broker connects): exit status 0, as a stop at any later moment, not killed by the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("asynctasq")


def test_a_sigterm_while_the_task_modules_import_is_a_stop(tmp_path: Path) -> None:
    marker = tmp_path / "importing"
    (tmp_path / "slow_start_tasks.py").write_text(
        textwrap.dedent(
            f"""
            import pathlib, time

            pathlib.Path({str(marker)!r}).touch()
            time.sleep(5)  # heavy imports
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
    command = [
        str(SCRIPT), "worker", "--driver", "sqlite", "-o", f"path={tmp_path / 'q.db'}",
        "--import", "slow_start_tasks", "--allowed-root", str(tmp_path), "--no-live",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the module was never imported"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, (proc.returncode, err)
    assert "SIGTERM before start-up finished: stopped" in err
