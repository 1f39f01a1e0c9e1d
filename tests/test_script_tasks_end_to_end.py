"""A task defined in a script run as ``__main__`` is found by a separate worker process.

This is how both user guides work: ``python app.py`` dispatches, ``asynctasq worker`` runs.
Uses the embedded SQLite driver, so it needs no server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

APP = textwrap.dedent(
    """
    import sys
    from asynctasq import init, run, task
    from asynctasq.core.task import Task

    init()  # reads ASYNCTASQ_* from the environment

    @task(queue="emails")
    async def send_email(to: str) -> None:
        with open("done.txt", "a") as f:
            f.write(f"email:{to}:{__name__}\\n")

    class Report(Task[None]):
        queue = "emails"

        def __init__(self, n: int, **kwargs):
            super().__init__(**kwargs)
            self.n = n

        async def handle(self) -> None:
            with open("done.txt", "a") as f:
                f.write(f"report:{self.n}\\n")

    async def main() -> None:
        await send_email(to="ada@example.com").dispatch()
        await Report(n=7).dispatch()

    if __name__ == "__main__":
        run(main())
    """
)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
    env["ASYNCTASQ_DRIVER"] = "sqlite"
    env["ASYNCTASQ_SQLITE_PATH"] = str(tmp_path / "queue.db")
    return env


def test_worker_imports_the_dispatching_script_by_module_name(tmp_path: Path) -> None:
    pytest.importorskip("asynctasq_sqlite")
    pytest.importorskip("asynctasq_cli")
    (tmp_path / "app.py").write_text(APP)
    env = _env(tmp_path)
    subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=env, check=True, timeout=60)
    assert not (tmp_path / "done.txt").exists()  # dispatching ran nothing
    subprocess.run(
        [str(BIN / "asynctasq"), "worker", "--queues", "emails", "--burst"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    lines = sorted((tmp_path / "done.txt").read_text().split())
    assert lines == ["email:ada@example.com:app", "report:7"]


def test_script_outside_the_allowed_roots_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("asynctasq_sqlite")
    pytest.importorskip("asynctasq_cli")
    scripts, elsewhere = tmp_path / "scripts", tmp_path / "worker-home"
    scripts.mkdir()
    elsewhere.mkdir()
    (scripts / "app.py").write_text(APP)
    env = _env(tmp_path)
    subprocess.run([sys.executable, "app.py"], cwd=scripts, env=env, check=True, timeout=60)
    # The worker runs elsewhere; the script's directory is importable (PYTHONPATH) but not an
    # allowed root, so the worker must refuse to import it.
    env["PYTHONPATH"] = str(scripts)
    subprocess.run(
        [str(BIN / "asynctasq"), "worker", "--queues", "emails", "--burst"],
        cwd=elsewhere,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert not (scripts / "done.txt").exists()
    assert not (elsewhere / "done.txt").exists()
    out = subprocess.run(
        [str(BIN / "asynctasq"), "dead-letters", "list", "--json"],
        cwd=elsewhere,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    assert out.count("outside the allowed roots") == 2, out


CONFIGURED_IN_CODE = textwrap.dedent(
    """
    import os
    from asynctasq import init, run, task

    # The task module picks its driver in code, as the user guides do.
    here = os.path.dirname(__file__)
    init({"driver": "sqlite", "sqlite": {"path": os.path.join(here, "code.db")}})

    @task(queue="emails")
    async def send_email(to: str) -> None:
        with open(os.path.join(os.path.dirname(__file__), "done.txt"), "a") as f:
            f.write(to + "\\n")

    if __name__ == "__main__":
        run(send_email(to="grace@example.com").dispatch())
    """
)


def test_worker_uses_the_driver_its_imported_task_module_configures(tmp_path: Path) -> None:
    pytest.importorskip("asynctasq_sqlite")
    pytest.importorskip("asynctasq_cli")
    (tmp_path / "codeapp.py").write_text(CONFIGURED_IN_CODE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
    subprocess.run([sys.executable, "codeapp.py"], cwd=tmp_path, env=env, check=True, timeout=60)
    subprocess.run(
        [str(BIN / "asynctasq"), "worker", "--queues", "emails", "--burst", "--import", "codeapp"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert (tmp_path / "done.txt").read_text().split() == ["grace@example.com"]
    assert not (tmp_path / "asynctasq.db").exists()  # not the embedded default's file
