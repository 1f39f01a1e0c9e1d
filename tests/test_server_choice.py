"""`server_choice`: local server, container or unavailable, decided without Docker here."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest

HELPER = Path(__file__).with_name("server_choice.py")


@pytest.fixture(scope="module")
def sc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asynctasq_tests_server_choice", HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _probe(answer: bool) -> object:
    calls: list[object] = []

    def probe(*args: object) -> bool:
        calls.append(args)
        return answer

    probe.calls = calls  # type: ignore[attr-defined]
    return probe


def test_a_server_that_answers_is_used_and_docker_is_not_asked(sc: ModuleType) -> None:
    docker = _probe(True)
    choice = sc.choose("redis", "redis://127.0.0.1:6379/15", reachable=_probe(True), docker=docker)
    assert choice.kind == "local"
    assert docker.calls == []  # type: ignore[attr-defined]


def test_no_server_and_docker_means_a_container(sc: ModuleType) -> None:
    choice = sc.choose("postgres", "postgresql://x@127.0.0.1:5432/test",
                       reachable=_probe(False), docker=_probe(True))  # fmt: skip
    assert choice.kind == "container"
    assert "postgres does not answer at postgresql://x@127.0.0.1:5432/test" in choice.reason


def test_neither_means_unavailable_with_what_to_do(sc: ModuleType) -> None:
    choice = sc.choose("mysql", "mysql://root@127.0.0.1:3306/test",
                       reachable=_probe(False), docker=_probe(False))  # fmt: skip
    assert choice.kind == "unavailable"
    assert "scripts/services.sh" in choice.reason and "ASYNCTASQ_TEST_" in choice.reason
    # The root conftest reads this as a missing server: under CI the tests fail.
    assert "not answer" in choice.reason


def test_an_unknown_service_is_refused(sc: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown service 'mongo'; known: redis, postgres"):
        sc.choose("mongo", "mongodb://x", reachable=_probe(True), docker=_probe(True))


def test_tcp_probe_sees_a_listener_and_a_closed_port(sc: ModuleType) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert sc.tcp_reachable(f"redis://127.0.0.1:{port}/15")
    assert not sc.tcp_reachable(f"redis://127.0.0.1:{port}/15", timeout=0.5)


def test_docker_probe_connects_to_the_socket(sc: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    assert not sc.docker_available({"DOCKER_HOST": f"unix://{path}"})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as daemon:
        daemon.bind(str(path))
        daemon.listen()
        assert sc.docker_available({"DOCKER_HOST": f"unix://{path}"})
    assert sc.docker_available({"DOCKER_HOST": "tcp://10.0.0.1:2375"})


def test_the_container_branch_alone_needs_testcontainers(
    sc: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers", None)  # as if not installed
    with pytest.raises(RuntimeError, match="install testcontainers"), sc.start_container("redis"):
        pass


class _Starts:
    """A fake container start: counts calls, returns a URL as a container would."""

    def __init__(self) -> None:
        self.services: list[str] = []

    def __call__(self, service: str) -> str:
        self.services.append(service)
        return f"redis://127.0.0.1:{49000 + len(self.services)}/15"


def test_an_explicit_variable_wins_without_probing(sc: ModuleType) -> None:
    environ = {"ASYNCTASQ_TEST_REDIS_URL": "redis://elsewhere:6380/3"}
    reachable, docker, start = _probe(False), _probe(True), _Starts()
    url = sc.resolve("redis", environ=environ, reachable=reachable, docker=docker, start=start)
    assert url == "redis://elsewhere:6380/3"
    assert reachable.calls == [] and docker.calls == [] and start.services == []  # type: ignore[attr-defined]


def test_a_local_server_is_used_as_before(sc: ModuleType) -> None:
    environ: dict[str, str] = {}
    reachable, docker, start = _probe(True), _probe(True), _Starts()
    url = sc.resolve("postgres", environ=environ, reachable=reachable, docker=docker, start=start)
    assert url == "postgresql://postgres@127.0.0.1:5432/test"
    assert reachable.calls == [(url,)]  # type: ignore[attr-defined]
    assert environ == {} and docker.calls == [] and start.services == []  # type: ignore[attr-defined]


def test_a_container_is_started_once_and_its_url_exported(sc: ModuleType) -> None:
    environ: dict[str, str] = {}
    start = _Starts()
    first = sc.resolve("redis", environ=environ, reachable=_probe(False), docker=_probe(True),
                       start=start)  # fmt: skip
    assert first == "redis://127.0.0.1:49001/15"
    assert environ == {"ASYNCTASQ_TEST_REDIS_URL": first}  # what subprocesses and workers see
    again = sc.resolve("redis", environ=environ, reachable=_probe(False), docker=_probe(True),
                       start=start)  # fmt: skip
    assert again == first and start.services == ["redis"]


def test_nothing_anywhere_leaves_the_local_url_to_the_fixtures(sc: ModuleType) -> None:
    environ: dict[str, str] = {}
    start = _Starts()
    url = sc.resolve("rabbitmq", environ=environ, reachable=_probe(False), docker=_probe(False),
                     start=start)  # fmt: skip
    assert url == "amqp://guest:guest@127.0.0.1:5672/"
    assert environ == {} and start.services == []


def test_every_image_has_its_variable(sc: ModuleType) -> None:
    assert set(sc.TEST_URLS) == set(sc.IMAGES)
    with pytest.raises(ValueError, match="unknown service 'mongo'"):
        sc.resolve("mongo", environ={}, reachable=_probe(True), docker=_probe(True),
                   start=_Starts())  # fmt: skip
