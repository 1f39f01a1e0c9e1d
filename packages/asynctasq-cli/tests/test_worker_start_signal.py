"""``asynctasq worker`` stopped by SIGTERM while it starts (its task modules import, the
broker connects): exit status 0, as a stop at any later moment, not killed by the signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
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


def test_a_sigterm_while_the_broker_connects_is_a_stop(tmp_path: Path) -> None:
    """A Redis that accepts and does not answer: the worker is connecting (on its event
    loop, where a plain exception raised by a signal handler would be logged and dropped)."""
    accepted = threading.Event()
    held: list[socket.socket] = []
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        conn, _ = server.accept()
        held.append(conn)
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
    command = [
        str(SCRIPT), "worker", "--driver", "redis", "-o", f"url=redis://127.0.0.1:{port}/0",
        "-o", "socket_timeout=30", "--no-live",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert accepted.wait(30), "the worker never connected"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for conn in held:
            conn.close()
        server.close()
    assert proc.returncode == 0, (proc.returncode, err)
    assert "SIGTERM before start-up finished: stopped" in err
