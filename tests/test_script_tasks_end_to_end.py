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


def _worker(cwd: Path, env: dict[str, str], *args: str) -> str:
    """Run ``asynctasq worker --burst`` in `cwd`; its output (logs included)."""
    return subprocess.run(
        [str(BIN / "asynctasq"), "worker", "--queues", "emails", "--burst", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "400"},
        check=True,
        timeout=120,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ).stdout


def test_script_outside_the_allowed_roots_is_not_loaded(tmp_path: Path) -> None:
    pytest.importorskip("asynctasq_sqlite")
    pytest.importorskip("asynctasq_cli")
    scripts, elsewhere = tmp_path / "scripts", tmp_path / "worker-home"
    scripts.mkdir()
    elsewhere.mkdir()
    (scripts / "app.py").write_text(APP)
    env = _env(tmp_path)
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "app.py"], cwd=scripts, env=env, check=True, timeout=60)
    # The message carries the script's location, but it lies outside the worker's roots: the
    # worker never loads it, and no retry would change that on this host, so the tasks are
    # dead-lettered at once with the reason and the fix (`dead-letters retry` replays them
    # once a worker is placed where it may load the script).
    out = _worker(elsewhere, env)
    assert not (scripts / "done.txt").exists()
    assert not (elsewhere / "done.txt").exists()
    assert out.count("refusing to load task script") == 2, out
    assert out.count("outside the allowed roots") == 2, out
    assert "dead-lettered 2" in out and "retrying in" not in out, out


def test_pythonpath_entries_are_trusted_roots(tmp_path: Path) -> None:
    pytest.importorskip("asynctasq_sqlite")
    pytest.importorskip("asynctasq_cli")
    app, root = tmp_path / "app", tmp_path / "root"
    app.mkdir()
    root.mkdir()
    (app / "shop_tasks.py").write_text(APP)
    env = _env(tmp_path)
    env["PYTHONPATH"] = str(app)
    subprocess.run([sys.executable, "shop_tasks.py"], cwd=app, env=env, check=True, timeout=60)
    out = _worker(root, env)
    lines = sorted((root / "done.txt").read_text().split())
    assert lines == ["email:ada@example.com:shop_tasks", "report:7"], out
    assert str(app) in out  # the banner names every root task code may come from


def test_script_run_from_a_subdirectory_is_found_by_a_worker_in_the_project(
    tmp_path: Path,
) -> None:
    pytest.importorskip("asynctasq_sqlite")
    pytest.importorskip("asynctasq_cli")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "nightly.py").write_text(APP)
    env = _env(tmp_path)
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [sys.executable, "jobs/nightly.py"], cwd=tmp_path, env=env, check=True, timeout=60
    )
    out = _worker(tmp_path, env)
    lines = sorted((tmp_path / "done.txt").read_text().split())
    assert lines == ["email:ada@example.com:nightly", "report:7"], out


def test_script_run_by_its_absolute_path_from_elsewhere(tmp_path: Path) -> None:
    pytest.importorskip("asynctasq_sqlite")
    pytest.importorskip("asynctasq_cli")
    project, elsewhere = tmp_path / "srv" / "app", tmp_path / "elsewhere"
    project.mkdir(parents=True)
    elsewhere.mkdir()
    (project / "jobs.py").write_text(APP)
    env = _env(tmp_path)
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [sys.executable, str(project / "jobs.py")], cwd=elsewhere, env=env, check=True, timeout=60
    )
    # Started in the project directory...
    out = _worker(project, env)
    lines = sorted((project / "done.txt").read_text().split())
    assert lines == ["email:ada@example.com:jobs", "report:7"], out
    # ...or elsewhere with the project as an allowed root.
    subprocess.run(
        [sys.executable, str(project / "jobs.py")], cwd=elsewhere, env=env, check=True, timeout=60
    )
    out = _worker(elsewhere, env, "--allowed-root", str(project))
    lines = sorted((elsewhere / "done.txt").read_text().split())
    assert lines == ["email:ada@example.com:jobs", "report:7"], out


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
