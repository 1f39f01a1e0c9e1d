"""The class a payload names is imported only through core's import guard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import sa_testapp
from sa_testapp import User
from sa_testsupport import Backend, run_worker

from asynctasq.drivers.base import OutgoingMessage
from asynctasq.serializer import DeserializationError, from_wire_async, set_import_guard
from asynctasq.testing import MemoryDriver


def node(*payload: Any) -> dict[str, Any]:
    return {"__aq__": "sqlalchemy", "v": list(payload)}


async def test_guard_is_asked_and_its_refusal_is_reported() -> None:
    asked: list[str] = []

    def guard(module: str) -> None:
        asked.append(module)
        raise PermissionError("not here")

    set_import_guard(guard)
    with pytest.raises(DeserializationError, match="refused by the import guard: not here"):
        await from_wire_async(node("somewhere.models:User", 1))
    assert asked == ["somewhere.models"]
    assert "somewhere" not in sys.modules


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (["json:JSONDecoder", 1], "it is not a sqlalchemy model class"),
        (["sa_testapp:nothing", 1], "AttributeError"),
        (["no_such_module_xyz:User", 1], "ModuleNotFoundError"),
        (["sa_testapp.User", 1], "expected 'module:qualname'"),
        ([42, 1], "not a str"),
        (["sa_testapp:User"], "malformed sqlalchemy model reference"),
    ],
)
async def test_bad_references_are_refused(payload: list[Any], message: str) -> None:
    with pytest.raises(DeserializationError, match=message):
        await from_wire_async(node(*payload))


@pytest.mark.parametrize("backend", ["pg-asyncpg"], indirect=True)
async def test_worker_refuses_a_module_outside_its_roots(
    backend: Backend,
    admin: Any,
    factory: Any,
    memory: MemoryDriver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = tmp_path / "imported"
    (outside / "sa_evil_models.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(outside))
    async with admin() as session:
        user = User(id=1, email="k@example.com", name="Kay")
        session.add(user)
        await session.commit()
        await sa_testapp.greet(user).dispatch()
    [record] = memory.messages()
    await memory.purge(record.queue)  # queued again below, naming another module
    tampered = record.payload.replace(b"sa_testapp:User", b"sa_evil_models:User")
    await memory.enqueue(
        OutgoingMessage(record.task_id, record.queue, orjson.dumps(orjson.loads(tampered)))
    )
    roots = [str(Path(sa_testapp.__file__).parent)]
    worker = await run_worker(memory, allowed_roots=roots)
    assert worker.stats.dead_lettered == 1 and sa_testapp.seen == []
    [dead] = memory.dead_letters()
    assert "refused by the import guard" in dead.failure.message
    assert not marker.exists() and "sa_evil_models" not in sys.modules


@pytest.mark.parametrize("backend", ["pg-asyncpg"], indirect=True)
async def test_hostile_model_references_never_stop_the_worker(
    backend: Backend,
    admin: Any,
    factory: Any,
    memory: MemoryDriver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model tag naming a __main__, a stdlib module or a module that exits when imported:
    each task is dead-lettered with the reason, the worker goes on with the good one."""
    for name in ("venv", "venv.__main__", "this"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    roots = [str(Path(sa_testapp.__file__).parent), str(tmp_path)]
    (tmp_path / "sa_exits_on_import.py").write_text("raise SystemExit(5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    async with admin() as session:
        user = User(id=1, email="k@example.com", name="Kay")
        session.add(user)
        await session.commit()
        for _ in range(4):
            await sa_testapp.greet(user).dispatch()
    hostile = ["venv.__main__:User", "this:User", "sa_exits_on_import:User"]
    records = memory.messages()
    await memory.purge("sa")  # queued again below, three of them naming hostile modules
    for i, record in enumerate(records):
        payload = record.payload
        if i < len(hostile):
            payload = payload.replace(b"sa_testapp:User", hostile[i].encode())
        await memory.enqueue(OutgoingMessage(record.task_id, record.queue, payload))
    worker = await run_worker(memory, allowed_roots=roots)
    assert worker.stats.dead_lettered == 3 and len(sa_testapp.seen) == 1
    reasons = sorted(d.failure.message for d in memory.dead_letters())
    assert any("private or __main__" in r for r in reasons), reasons
    assert any("standard-library" in r for r in reasons), reasons
    assert any("SystemExit" in r for r in reasons), reasons
    assert "this" not in sys.modules and not (tmp_path / "worker").exists()
