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
