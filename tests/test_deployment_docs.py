"""docs/operations/deployment.md: the systemd unit, Dockerfile and Kubernetes manifests are
well-formed, agree with the code (grace periods, key names), and every ``asynctasq``
command they run names real commands and options."""

from __future__ import annotations

import configparser
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from asynctasq.supervisor import Supervisor
from asynctasq_cli.app import app

PAGE = Path(__file__).resolve().parents[1] / "docs" / "operations" / "deployment.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(PAGE.read_text()) if lang == language]


def the_block(language: str) -> str:
    [body] = blocks(language)[:1]
    return body


def option_names(command: Any) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def check_command(argv: list[str]) -> None:
    """``asynctasq ...`` argv: its command exists and every option it gives does."""
    assert Path(argv[0]).name == "asynctasq", argv
    root: Any = typer.main.get_command(app)  # a group of typer's own click
    words = [w for w in argv[1:] if not w.startswith("-")]
    command = root.commands.get(words[0]) if words else None
    assert command is not None, f"no command {words[:1]} in {argv}"
    known = option_names(command) | option_names(root)
    for word in argv[1:]:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in known, f"{word!r} is not an option of {argv[:2]}"


def commands_in(text: str) -> list[list[str]]:
    """Every ``asynctasq`` command line in shell text (split at pipes, ``&&``, ``;``)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in ("|", "||", "&&", ";", "&"):
                if words and Path(words[0]).name == "asynctasq":
                    found.append(words)
                words = []
            else:
                words.append(token)
    return found


def every_command() -> list[list[str]]:
    text = PAGE.read_text()
    found: list[list[str]] = []
    for lang, body in FENCE.findall(text):
        if lang in ("bash", "ini"):
            found += commands_in(body.replace("ExecStart=", ""))
        elif lang == "dockerfile":
            for line in body.splitlines():
                if line.startswith(("CMD [", "ENTRYPOINT [")):
                    argv = json.loads(line.split(" ", 1)[1])
                    if Path(argv[0]).name == "asynctasq":
                        found.append(argv)
        elif lang == "yaml":
            for doc in yaml.safe_load_all(body):
                found += list(_yaml_commands(doc))
    prose = FENCE.sub("", text)
    for span in re.findall(r"`(asynctasq [^`]+)`", prose):
        found.append(shlex.split(span))
    return found


def _yaml_commands(node: Any) -> list[list[str]]:
    found: list[list[str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("args", "command") and isinstance(value, list):
                if value and Path(str(value[0])).name == "asynctasq":
                    found.append([str(v) for v in value])
                else:
                    for item in value:
                        found += commands_in(str(item))
            else:
                found += _yaml_commands(value)
    elif isinstance(node, list):
        for item in node:
            found += _yaml_commands(item)
    return found


def test_every_asynctasq_command_in_the_page_exists() -> None:
    commands = every_command()
    assert len(commands) >= 8, commands  # bash, systemd, Docker, Kubernetes, probe, prose
    for argv in commands:
        check_command(argv)
    assert any("--workers" in argv for argv in commands)


def test_the_option_checker_refuses_what_does_not_exist() -> None:
    with pytest.raises(AssertionError, match="not an option"):
        check_command(["asynctasq", "worker", "--wokers", "2"])
    with pytest.raises(AssertionError, match="no command"):
        check_command(["asynctasq", "wroker"])


def stop_grace() -> float:
    default = inspect.signature(Supervisor).parameters["stop_grace"].default
    assert isinstance(default, float)
    return default


def shutdown_timeout(argv: list[str]) -> float:
    return float(argv[argv.index("--shutdown-timeout") + 1])


def test_the_systemd_unit_signals_only_the_supervisor_and_waits_for_the_drain() -> None:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(the_block("ini"))
    assert parser.sections() == ["Unit", "Service", "Install"]
    service = parser["Service"]
    assert service["KillMode"] == "mixed"
    [argv] = commands_in(service["ExecStart"])
    assert float(service["TimeoutStopSec"]) > shutdown_timeout(argv) + stop_grace()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("asynctasq")
    text = the_block("ini").replace("/srv/myapp/.venv/bin/asynctasq", str(script))
    unit = tmp_path / "myapp-worker.service"
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    # Only what concerns this unit: the host's own units may have problems of their own.
    about_ours = [line for line in done.stderr.splitlines() if unit.name in line]
    problems = [line for line in about_ours if "User" not in line]  # no 'myapp' user here
    assert not problems, done.stderr


def test_the_dockerfile_is_well_formed() -> None:
    body = the_block("dockerfile")
    instructions = [line.split()[0] for line in body.splitlines() if line and line[0] != "#"]
    assert set(instructions) <= DOCKERFILE_INSTRUCTIONS, instructions
    assert instructions[0] == "FROM"
    assert "STOPSIGNAL" in instructions and "ENTRYPOINT" in instructions


def manifest(kind: str) -> dict[str, Any]:
    """The page's YAML document of `kind` (or, for "probe", the exec probe's block)."""
    for body in blocks("yaml"):
        doc = next(yaml.safe_load_all(body))
        if doc.get("kind") == kind or (kind == "probe" and "exec" in doc.get("livenessProbe", {})):
            return dict(doc)
    raise AssertionError(f"no {kind} in {PAGE.name}")


def option_value(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


def test_the_kubernetes_grace_period_covers_the_drain() -> None:
    deployment, scaled = manifest("Deployment"), manifest("ScaledObject")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > shutdown_timeout(container["args"]) + stop_grace()
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_the_keda_trigger_reads_the_list_the_redis_driver_keeps_ready_tasks_in() -> None:
    pytest.importorskip("asynctasq_redis")
    from asynctasq_redis import RedisDriver
    from asynctasq_redis._keys import QueueKeys

    [trigger] = manifest("ScaledObject")["spec"]["triggers"]
    prefix = inspect.signature(RedisDriver).parameters["prefix"].default
    assert trigger["metadata"]["listName"] == QueueKeys.build(prefix, "default").ready


@pytest.mark.parametrize(("hosts", "code"), [(["pod-a", "pod-a", "pod-b"], 0), (["pod-a"], 1)])
def test_the_liveness_probe_counts_this_pods_workers(hosts: list[str], code: int) -> None:
    shell = manifest("probe")["livenessProbe"]["exec"]["command"][-1]
    program = shlex.split(shell.split("|", 1)[1])[-1]  # the python -c '...' after the pipe
    listing = json.dumps([{"host": h, "pid": i} for i, h in enumerate(hosts)])
    done = subprocess.run(
        [sys.executable, "-c", program],
        input=listing,
        capture_output=True,
        text=True,
        env={**os.environ, "HOSTNAME": "pod-a"},
        check=False,
    )
    assert done.returncode == code, done.stderr


def test_the_http_probes_reach_the_workers_health_endpoints() -> None:
    """The kubelet probes the pod's address: the port the probes name is the one the worker
    serves its health endpoints on, bound to every address, and the paths are the ones the
    worker answers."""
    pytest.importorskip("asynctasq_prometheus")
    from prometheus_client import CollectorRegistry

    from asynctasq_prometheus.server import make_app

    def served(path: str) -> str:
        """The status the worker's HTTP app gives `path`, with both checks passing."""
        statuses: list[str] = []
        app = make_app(CollectorRegistry(), lambda: None, lambda: None)
        app({"PATH_INFO": path}, lambda status, headers: statuses.append(status))
        return statuses[0]

    [container] = manifest("Deployment")["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert option_value(args, "--metrics-host") == "0.0.0.0"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and served(path) == "200 OK"
        assert ports[get["port"]] == int(option_value(args, "--metrics-port"))
