"""Misspelt ``ASYNCTASQ_*`` variables: a warning from every command, a problem for doctor."""

from __future__ import annotations

import json
from pathlib import Path

from cli_testing import Invoke


def test_doctor_reports_a_misspelt_section_as_a_problem(
    cli: Invoke, memory_args: list[str]
) -> None:
    result = cli("doctor", *memory_args, env={"ASYNCTASQ_WORKERS_CONCURRENCY": "5"})
    assert result.exit_code == 1, result.output
    assert "No problems found" not in result.stdout
    assert (
        "configuration: environment: ASYNCTASQ_WORKERS_CONCURRENCY is not an AsyncTasQ "
        "setting and is ignored; did you mean ASYNCTASQ_WORKER_CONCURRENCY?"
    ) in result.stdout.replace("\n", " ").replace("  ", " ")


def test_doctor_json_names_dotenv_strays_and_lists_foreign_variables(
    cli: Invoke, memory_args: list[str]
) -> None:
    Path(".env").write_text("ASYNCTASQ_TASK_DEFAULT_QUEUE=x\nASYNCTASQ_DEPLOY_COLOUR=blue\n")
    result = cli("doctor", *memory_args, "--json", env={"ASYNCTASQ_TEST_SOMETHING": "1"})
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    [problem] = report["problems"]
    assert "ASYNCTASQ_TASK_DEFAULT_QUEUE" in problem
    assert "did you mean ASYNCTASQ_TASK_DEFAULTS_QUEUE?" in problem
    assert [v.split(" ")[0] for v in report["ignored_variables"]] == ["ASYNCTASQ_DEPLOY_COLOUR"]


def test_doctor_finds_no_problem_in_foreign_variables(cli: Invoke, memory_args: list[str]) -> None:
    env = {"ASYNCTASQ_DEPLOY_COLOUR": "blue", "ASYNCTASQ_LOG_LEVEL": "debug"}
    result = cli("doctor", *memory_args, env=env)
    assert result.exit_code == 0, result.output
    assert "No problems found" in result.stdout
    assert "ASYNCTASQ_DEPLOY_COLOUR (environment)" in result.stdout
    assert "ASYNCTASQ_LOG_LEVEL" not in result.stdout


def test_commands_warn_about_misspelt_variables_once(cli: Invoke, memory_args: list[str]) -> None:
    env = {"ASYNCTASQ_WORKERS_CONCURRENCY": "5"}
    result = cli("queues", *memory_args, "-o", "namespace=x", env=env)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "warning: environment: ASYNCTASQ_WORKERS_CONCURRENCY is not an AsyncTasQ setting and "
        "is ignored; did you mean ASYNCTASQ_WORKER_CONCURRENCY?\n"
    )


def test_the_worker_holds_the_no_driver_warning_until_its_modules_chose_one(
    cli: Invoke, namespace: str
) -> None:
    """A broker's settings in the environment and no driver: a warning, unless a module that
    --import runs chooses the driver in code (as the README's app does)."""
    module = f"chooses_driver_{namespace.replace('-', '_')}"
    Path(f"{module}.py").write_text(
        "from asynctasq import init\n"
        f"init({{'driver': 'memory', 'memory': {{'namespace': '{namespace}'}}}})\n"
    )
    env = {"ASYNCTASQ_REDIS_URL": "redis://127.0.0.1:1/0"}
    chosen = cli("worker", "--import", module, "--burst", env=env)
    assert chosen.exit_code == 0, chosen.output
    assert "no driver is chosen" not in chosen.stderr
    assert "driver memory" in chosen.stderr
    unchosen = cli("worker", "--burst", env=env)
    assert unchosen.exit_code == 0, unchosen.output
    assert (
        "warning: environment: redis settings are given but no driver is chosen, so the "
        "embedded sqlite driver is used; set ASYNCTASQ_DRIVER=redis"
    ) in unchosen.stderr


def test_schedules_holds_the_no_driver_warning_until_its_modules_chose_one(
    cli: Invoke, namespace: str
) -> None:
    """As the worker: `asynctasq schedules --import` reads the modules that declare them, and
    one of those may choose the driver in code."""
    module = f"schedules_driver_{namespace.replace('-', '_')}"
    Path(f"{module}.py").write_text(
        "from asynctasq import init\n"
        f"init({{'driver': 'memory', 'memory': {{'namespace': '{namespace}'}}}})\n"
    )
    env = {"ASYNCTASQ_REDIS_URL": "redis://127.0.0.1:1/0"}
    chosen = cli("schedules", "--import", module, env=env)
    assert chosen.exit_code == 0, chosen.output
    assert "no driver is chosen" not in chosen.stderr
    unchosen = cli("schedules", "--set", f"sqlite.path={namespace}.db", env=env)
    assert unchosen.exit_code == 0, unchosen.output
    assert unchosen.stderr.count("redis settings are given but no driver is chosen") == 1
