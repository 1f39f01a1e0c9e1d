"""Messages naming code the worker must not load, and code that misbehaves when loaded.

Whoever can write to the broker can name any module. None of these may stop the worker,
import a module the operator did not allow, or cost the other tasks fetched with it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from asynctasq import Middleware, task
from asynctasq.core.resolver import TaskResolver
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import ForbiddenTaskError, TaskNotFoundError
from asynctasq.serializer import get_import_guard
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

ran: list[Any] = []


@task(queue="h", max_attempts=1)
async def fine(n: int) -> None:
    ran.append(n)


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    ran.clear()
    yield
    ran.clear()


def payload(name: str, args: list[Any] | None = None, *, attempts: int = 1, **extra: Any) -> bytes:
    doc = {
        "v": 1,
        "id": "x",
        "task": name,
        "at": 0,
        "o": [attempts, 0, "fixed", 0, False, None, 30],
        "args": args or [],
        "kwargs": {},
        **extra,
    }
    return orjson.dumps(doc)


def enum_arg(ref: str) -> dict[str, Any]:
    return {"__aq__": "enum", "v": [ref, 1]}


async def drain(
    messages: list[tuple[str, bytes]], until: Callable[[MemoryDriver], bool], **kwargs: Any
) -> MemoryDriver:
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    for task_id, body in messages:
        await driver.enqueue(OutgoingMessage(task_id, "h", body))
    kwargs.setdefault("install_signal_handlers", False)
    kwargs.setdefault("poll_wait", 0.05)
    kwargs.setdefault("concurrency", 50)
    worker = Worker(driver, queues=["h"], **kwargs)
    runner = asyncio.create_task(worker.run())
    for _ in range(600):
        if until(driver) or runner.done():
            break
        await asyncio.sleep(0.02)
    worker.request_stop()
    await asyncio.wait_for(runner, 30)  # the worker ended normally: nothing escaped it
    return driver


async def letters(driver: MemoryDriver) -> dict[str, str]:
    return {d.task_id: d.failure.message for d in await driver.list_dead_letters(queue="h")}


def dead(n: int) -> Callable[[MemoryDriver], bool]:
    return lambda d: len(d.dead_letters()) >= n  # type: ignore[attr-defined]


# -- references that raise SystemExit or print when imported ---------------------------------


async def test_hostile_task_references_are_dead_lettered_and_the_batch_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `venv` would create ./worker here
    for name in ("venv", "venv.__main__", "unittest.__main__", "this", "antigravity"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    hostile = {
        "venv": "venv.__main__:x",
        "unittest": "unittest.__main__:x",
        "this": "this:x",
        "antigravity": "antigravity:x",
        "os": "os:system",
        "dunder": "asynctasq:__class__",
        "long": "a" * 5000 + ":x",
    }
    messages = [(key, payload(ref)) for key, ref in hostile.items()]
    messages += [(f"ok{n}", payload(fine.name, [n])) for n in range(5)]
    driver = await drain(messages, lambda d: len(ran) == 5 and dead(len(hostile))(d))
    found = await letters(driver)
    assert set(found) == set(hostile)
    assert "private or __main__" in found["venv"]
    assert "private or __main__" in found["unittest"]
    assert "standard-library" in found["this"]
    assert "standard-library" in found["antigravity"]
    assert "is not a task" in found["os"]
    assert "dunder" in found["dunder"]
    assert "too long" in found["long"]
    assert sorted(ran) == [0, 1, 2, 3, 4]
    assert "this" not in sys.modules and "antigravity" not in sys.modules
    assert not (tmp_path / "worker").exists()


async def test_hostile_enum_references_are_dead_lettered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("venv", "venv.__main__", "this"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    (tmp_path / "exit_enum_mod.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    hostile = {
        "venv": "venv.__main__:X",
        "this": "this:X",
        "exit": "exit_enum_mod:Colour",
    }
    messages = [(k, payload(fine.name, [enum_arg(ref)])) for k, ref in hostile.items()]
    messages.append(("ok", payload(fine.name, [7])))
    driver = await drain(
        messages, lambda d: ran == [7] and dead(3)(d), allowed_roots=[str(tmp_path)]
    )
    found = await letters(driver)
    assert set(found) == set(hostile)
    assert "private or __main__" in found["venv"]
    assert "standard-library" in found["this"]
    assert "SystemExit" in found["exit"]
    assert "this" not in sys.modules


@pytest.fixture
def quick_not_found_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code not found is retried after 5 s at the least; tests need not wait that long."""
    import asynctasq.worker.worker as worker_module

    monkeypatch.setattr(worker_module, "NOT_FOUND_RETRY_DELAY", 0.05)


@pytest.mark.usefixtures("quick_not_found_retries")
async def test_a_task_module_exiting_on_import_is_retried_then_dead_lettered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exits_on_import.py").write_text("raise SystemExit(2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    messages = [("exit", payload("exits_on_import:t", attempts=2)), ("ok", payload(fine.name, [1]))]
    driver = await drain(messages, dead(1), allowed_roots=[str(tmp_path)])
    [letter] = await driver.list_dead_letters(queue="h")
    assert letter.attempts == 2  # delivered twice: retried once (deploy skew), then dead
    assert "importing task module 'exits_on_import' failed: SystemExit" in letter.failure.message
    assert "dead-letters retry" not in letter.failure.message  # the hint is for logs
    assert ran == [1]


# -- imports happen only where the operator allows --------------------------------------------


def test_a_parent_package_outside_the_roots_is_not_imported_to_check_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside, root = tmp_path / "outside", tmp_path / "root"
    (outside / "evilpkg_x1").mkdir(parents=True)
    root.mkdir()
    marker = tmp_path / "ran"
    (outside / "evilpkg_x1" / "__init__.py").write_text(f"open({str(marker)!r}, 'w')\n")
    (outside / "evilpkg_x1" / "sub.py").write_text("")
    monkeypatch.syspath_prepend(str(outside))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    resolver = TaskResolver([root])
    with pytest.raises(ForbiddenTaskError, match="outside the allowed roots"):
        resolver.resolve("evilpkg_x1.sub:t")
    with pytest.raises(ForbiddenTaskError, match="outside the allowed roots"):
        resolver.check_module("evilpkg_x1.sub")
    assert not marker.exists()
    assert "evilpkg_x1" not in sys.modules


def test_a_submodule_inside_the_roots_of_a_package_inside_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "okpkg_x2").mkdir()
    (tmp_path / "okpkg_x2" / "__init__.py").write_text("")
    (tmp_path / "okpkg_x2" / "jobs.py").write_text(
        "from asynctasq import task\n@task\nasync def t() -> None: ...\n"
    )
    monkeypatch.delenv("PYTHONPATH", raising=False)
    try:
        resolver = TaskResolver([tmp_path])
        assert resolver.resolve("okpkg_x2.jobs:t").name == "okpkg_x2.jobs:t"
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("okpkg_x2", "okpkg_x2.jobs"):
            sys.modules.pop(name, None)


def test_pythonpath_entries_are_allowed_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, cwd = tmp_path / "app", tmp_path / "elsewhere"
    app.mkdir()
    cwd.mkdir()
    (app / "pp_tasks_x3.py").write_text(
        "from asynctasq import task\n@task\nasync def t() -> None: ...\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(app))
    monkeypatch.syspath_prepend(str(app))
    monkeypatch.chdir(cwd)
    try:
        resolver = TaskResolver()
        assert app.resolve() in resolver.allowed_roots
        assert resolver.resolve("pp_tasks_x3:t").name == "pp_tasks_x3:t"
    finally:
        sys.modules.pop("pp_tasks_x3", None)
        sys.path.remove(str(cwd.resolve()))


async def test_a_task_defined_in_a_function_is_dead_lettered_saying_where_to_define_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Such a task runs in the process that defined it (it is registered there); any other
    # worker can never import it, so replaying the message would fail the same way.
    messages = [
        ("local", payload(f"{__name__}:make.<locals>.inner")),
        ("lambda", payload(f"{__name__}:<lambda>")),
    ]
    with caplog.at_level(logging.ERROR, logger="asynctasq.worker"):
        driver = await drain(messages, dead(2))
    found = await letters(driver)
    assert set(found) == {"local", "lambda"}
    for message in found.values():
        assert "defined inside a function or as a lambda" in message
        assert "define the task at module level" in message
    assert "was dead-lettered" in caplog.text and "dead-letters retry" not in caplog.text


async def test_a_module_starting_an_event_loop_at_import_is_told_to_use_a_main_guard(
    tmp_path: Path,
) -> None:
    # The guides' scripts end with run(main()): without the guard, a worker importing the
    # module runs it inside its own loop.
    (tmp_path / "unguarded_x7.py").write_text(
        "import asyncio\nloop = asyncio.new_event_loop()\n"
        "try:\n    loop.run_forever()\nfinally:\n    loop.close()\n"
    )
    try:
        resolver = TaskResolver([tmp_path])
        with pytest.raises(TaskNotFoundError) as failed:
            resolver.resolve("unguarded_x7:t")
        assert "another loop is running" in str(failed.value)
        assert 'under `if __name__ == "__main__":`' in str(failed.value)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("unguarded_x7", None)


def test_deploy_skew_is_not_found_not_forbidden(tmp_path: Path) -> None:
    (tmp_path / "skew_tasks_x4.py").write_text(
        "from asynctasq import task\n@task\nasync def a() -> None: ...\nb_not_a_task = 1\n"
    )
    try:
        resolver = TaskResolver([tmp_path])
        with pytest.raises(TaskNotFoundError) as missing_task:
            resolver.resolve("skew_tasks_x4:b")
        assert not isinstance(missing_task.value, ForbiddenTaskError)
        with pytest.raises(TaskNotFoundError) as missing_module:
            resolver.resolve("not_deployed_here_x4:a")
        assert not isinstance(missing_module.value, ForbiddenTaskError)
        with pytest.raises(ForbiddenTaskError, match="is not a task"):
            resolver.resolve("skew_tasks_x4:b_not_a_task")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("skew_tasks_x4", None)


@pytest.mark.usefixtures("quick_not_found_retries")
async def test_a_task_not_deployed_here_is_retried_not_dead_lettered_at_once() -> None:
    messages = [("skew", payload("not_deployed_here_x5:t", attempts=3))]
    driver = await drain(messages, dead(1))
    [letter] = await driver.list_dead_letters(queue="h")
    assert letter.attempts == 3  # delivered three times: retried twice before giving up
    assert "not_deployed_here_x5" in letter.failure.message


# -- scripts run as __main__ ------------------------------------------------------------------


def test_a_script_is_loaded_from_its_location_under_the_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jobs").mkdir()
    script = tmp_path / "jobs" / "nightly_x6.py"
    script.write_text("from asynctasq import task\n@task\nasync def t() -> None: ...\n")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    try:
        resolver = TaskResolver([tmp_path])
        with pytest.raises(TaskNotFoundError):
            resolver.resolve("nightly_x6:t")  # not importable by name from the root
        found = resolver.resolve(
            "nightly_x6:t", ["/no/such/dir/jobs/nightly_x6.py", "jobs/nightly_x6.py"]
        )
        assert found.name == "nightly_x6:t"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("nightly_x6", None)


def test_a_script_outside_the_roots_is_never_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    marker = tmp_path / "ran"
    script = outside / "evil_x7.py"
    script.write_text(f"open({str(marker)!r}, 'w')\n")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    try:
        resolver = TaskResolver([root])
        for location in (
            [str(script), "x.py"],
            ["/x.py", "../outside/evil_x7.py"],
            [str(root / ".." / "outside" / "evil_x7.py"), "evil_x7.py"],
        ):
            # There, and never to be loaded here: refused for good (dead-lettered at once
            # with the reason), not retried as code that might be deployed later.
            with pytest.raises(ForbiddenTaskError, match="outside the allowed roots"):
                resolver.resolve("evil_x7:t", location)
        # A location with no such file here may be another host's: looked for again later.
        with pytest.raises(TaskNotFoundError):
            resolver.resolve("evil_x7:t", [str(outside / "gone" / "evil_x7.py"), "x.py"])
        # A location whose file is not named after the module is not loaded either.
        (root / "other.py").write_text(f"open({str(marker)!r}, 'w')\n")
        with pytest.raises(TaskNotFoundError):
            resolver.resolve("evil_x7:t", [str(root / "other.py"), "other.py"])
    finally:
        sys.path.remove(str(root))
    assert not marker.exists()
    assert "evil_x7" not in sys.modules


# -- task code raising what ends processes ----------------------------------------------------


@task(queue="h", max_attempts=2, retry_delay=0)
async def calls_sys_exit() -> None:
    ran.append("exit")
    sys.exit(4)


@task(queue="h", max_attempts=1)
def thread_raises_keyboard_interrupt() -> None:
    ran.append("kbd")
    raise KeyboardInterrupt


@task(queue="h", max_attempts=1)
async def raises_stray_cancelled() -> None:
    ran.append("cancelled")
    raise asyncio.CancelledError


async def test_system_exit_and_friends_from_a_task_are_failures_not_the_end_of_the_worker() -> None:
    messages = [
        ("exit", payload(calls_sys_exit.name, attempts=2)),
        ("kbd", payload(thread_raises_keyboard_interrupt.name)),
        ("cancelled", payload(raises_stray_cancelled.name)),
        ("ok", payload(fine.name, [1])),
    ]
    driver = await drain(messages, dead(3))
    found = {d.task_id: d for d in await driver.list_dead_letters(queue="h")}
    assert set(found) == {"exit", "kbd", "cancelled"}
    assert found["exit"].attempts == 2 and "SystemExit: 4" in found["exit"].failure.message
    assert "KeyboardInterrupt" in found["kbd"].failure.message
    assert "CancelledError" in found["cancelled"].failure.message
    assert ran.count("exit") == 2 and 1 in ran


# -- start-up failures undo the start-up -------------------------------------------------------


class _BootFails(Middleware):
    def before_worker_boot(self, worker: Any) -> None:
        raise RuntimeError("boot failed")


async def test_a_failing_boot_hook_leaves_no_guard_and_no_pools_behind() -> None:
    before = get_import_guard()
    tasks_before = set(asyncio.all_tasks())
    worker = Worker(
        await get_driver(),
        queues=["h"],
        middleware=[_BootFails()],
        install_signal_handlers=False,
    )
    with pytest.raises(RuntimeError, match="boot failed"):
        await worker.run()
    assert get_import_guard() is before
    leftover = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    assert leftover == set(), leftover
    assert worker._router is not None
    assert worker._router._threads._shutdown  # type: ignore[attr-defined]


# -- found by an attacker's review ------------------------------------------------------------


def test_a_script_location_cannot_load_a_file_under_a_stdlib_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``this.tasks`` with a `src` pointing at a deployed file: loading it under that name
    would let its relative imports import ``this``."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "tasks.py").write_text("from .models import X\n")
    monkeypatch.delitem(sys.modules, "this", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    try:
        resolver = TaskResolver([tmp_path])
        src = [str(tmp_path / "myapp" / "tasks.py"), "myapp/tasks.py"]
        for parent in ("this", "antigravity"):
            with pytest.raises(ForbiddenTaskError, match="standard-library"):
                resolver.resolve(f"{parent}.tasks:hello", src)
        # A dotted name is never loaded from a script location, whatever its parent.
        with pytest.raises(TaskNotFoundError):
            resolver.resolve("not_a_package_x8.tasks:hello", src)
    finally:
        sys.path.remove(str(tmp_path))
    assert "this" not in sys.modules and "antigravity" not in sys.modules


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ([2**62, 0, "fixed", 0, False, None, 30], "max_attempts"),
        ([True, 0, "fixed", 0, False, None, 30], "max_attempts"),
        ([3, -1, "fixed", 0, False, None, 30], "retry delay"),
        ([3, float("inf"), "fixed", 0, False, None, 30], "retry delay"),
        ([3, 0, "fixed", 0, "yes", None, 30], "jitter"),
        ([3, 0, "fixed", 0, False, 0, 30], "timeout"),
        ([3, 0, "fixed", 0, False, None, 0], "visibility timeout"),
        ([3, 0, "fixed", 0, False, None, -5], "visibility timeout"),
        ([3, 0, "fixed", 0, False, None, 1e12], "visibility timeout"),
        ([3, 0, "fixed", 0, False, None, 30, -1], "result retention"),
    ],
)
def test_absurd_options_in_a_message_are_malformed(options: list[Any], problem: str) -> None:
    """Version 1 (positional options) and version 2 (named) are checked alike."""
    from asynctasq.core import envelope
    from asynctasq.errors import MalformedMessageError

    names = ["ma", "rd", "rs", "rm", "rj", "to", "vt", "kr"]
    for version, opts in [(1, options), (2, dict(zip(names, options, strict=False)))]:
        doc = {"v": version, "id": "x", "task": "m:t", "at": 0, "o": opts}
        doc.update(args=[], kwargs={})
        # JSON has no infinity (orjson reads 1e999 as an error, writes inf as null): the
        # infinite delay arrives as null, refused like any non-number.
        with pytest.raises(MalformedMessageError, match=problem):
            envelope.decode(orjson.dumps(doc))


GOOD_OPTIONS = {"ma": 3, "rd": 0, "rs": "fixed", "rm": 0, "rj": False, "vt": 30}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"ma": None}, r"max_attempts \('ma'\) is not a whole number"),
        ({"ma": "3"}, r"max_attempts \('ma'\) is not a whole number"),
        ({"ma": 3.0}, r"max_attempts \('ma'\) is not a whole number"),
        ({"ma": -1}, r"max_attempts \('ma'\) is not between 0 and 100000"),
        ({"rd": None}, r"retry delay \('rd', 'rm'\)"),
        ({"rm": "60"}, r"retry delay \('rd', 'rm'\)"),
        ({"rm": 1e10}, r"retry delay \('rd', 'rm'\)"),
        ({"rs": None}, r"retry strategy \('rs'\)"),
        ({"rs": ["fixed"]}, r"retry strategy \('rs'\)"),
        ({"rj": 1}, r"retry jitter \('rj'\)"),
        ({"rj": None}, r"retry jitter \('rj'\)"),
        ({"to": -3}, r"the timeout \('to'\)"),
        ({"to": True}, r"the timeout \('to'\)"),
        ({"vt": None}, r"visibility timeout \('vt'\)"),
        ({"vt": False}, r"visibility timeout \('vt'\)"),
        ({"kr": None}, r"result retention \('kr'\)"),
        ({"kr": "1h"}, r"result retention \('kr'\)"),
    ],
)
def test_missing_or_mistyped_named_options_are_malformed(
    change: dict[str, Any], problem: str
) -> None:
    from asynctasq.core import envelope
    from asynctasq.errors import MalformedMessageError

    opts = {**GOOD_OPTIONS, **change}
    doc = {"v": 2, "task": "m:t", "o": opts, "args": [], "kwargs": {}}
    envelope.decode(orjson.dumps({**doc, "o": GOOD_OPTIONS}))  # the unchanged ones are fine
    with pytest.raises(MalformedMessageError, match=problem):
        envelope.decode(orjson.dumps(doc))
    for name in ("ma", "rd", "rs", "rm", "rj", "vt"):  # and none of these may be left out
        missing = {k: v for k, v in GOOD_OPTIONS.items() if k != name}
        with pytest.raises(MalformedMessageError, match=f"'{name}'"):
            envelope.decode(orjson.dumps({**doc, "o": missing}))


def test_absurd_settings_are_refused_at_dispatch_too() -> None:
    with pytest.raises(ValueError, match="at most 100000"):
        fine(1).max_attempts(2**62)
    with pytest.raises(ValueError, match="at most 315360000 seconds"):
        fine(1).delay(1e12)


async def test_a_task_not_found_is_not_retried_in_a_tight_loop() -> None:
    started = time.monotonic()
    driver = await drain(
        [("skew", payload("not_deployed_x9:t", attempts=1000))],
        lambda d: time.monotonic() - started > 2,
    )
    [skew] = driver.messages()  # type: ignore[attr-defined]
    worker_runs = skew.deliveries
    assert worker_runs == 1  # retried after at least 5 s, not at once
    [stats] = await driver.stats(["h"])
    assert stats.delayed == 1


def test_a_module_getattr_is_not_called_for_a_name_a_message_chose(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "lazy_mod_x10.py").write_text(
        f"def __getattr__(name):\n    open({str(marker)!r}, 'w')\n    raise AttributeError(name)\n"
    )
    try:
        resolver = TaskResolver([tmp_path])
        with pytest.raises(TaskNotFoundError):
            resolver.resolve("lazy_mod_x10:anything")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lazy_mod_x10", None)
    assert not marker.exists()


async def test_control_characters_from_a_message_are_escaped_in_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nasty = "evil\x1b[2J\x1bc\r\u202e:x"
    with caplog.at_level("ERROR", logger="asynctasq.worker"):
        await drain([("id\x1b]0;title\x07", payload(nasty))], dead(1))
    text = caplog.text
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b" in text


class Shade(enum.Enum):
    DARK = 1


@task(queue="h", max_attempts=1)
async def takes_a_shade(shade: Shade) -> None:
    ran.append(shade)


async def test_the_lost_path_loads_nothing_the_message_names(tmp_path: Path) -> None:
    """A message whose argument names a module that kills the worker when imported: once
    its attempts are used up it is dead-lettered without importing that module again."""
    marker = tmp_path / "imported"
    (tmp_path / "killer_x11.py").write_text(
        f"open({str(marker)!r}, 'w')\nimport enum\nclass X(enum.Enum):\n    A = 1\n"
    )
    body = payload(takes_a_shade.name, [enum_arg("killer_x11:X")], attempts=1)
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    await driver.enqueue(OutgoingMessage("lost", "h", body))
    # Its one allowed delivery went to a worker that died (the lease ran out unsettled).
    [taken] = await driver.dequeue(["h"], limit=1, wait=1)
    await driver.extend([taken], 0.05)
    await asyncio.sleep(0.1)
    sys.path.insert(0, str(tmp_path))
    try:
        await drain([], dead(1), allowed_roots=[str(tmp_path)])
    finally:
        sys.path.remove(str(tmp_path))
    [letter] = await driver.list_dead_letters(queue="h")
    assert letter.failure.exception_type == "asynctasq.errors.TaskLostError"
    assert not marker.exists() and "killer_x11" not in sys.modules


async def test_a_lost_task_gets_its_failed_hook_in_a_worker_that_never_ran_it(
    tmp_path: Path,
) -> None:
    """The usual way after a crash: a fresh worker, started without importing the task's
    module, dead-letters a task whose runs were all lost, and still calls its ``failed()``
    (the module is loaded after the message is dead-lettered, so it cannot loop)."""
    marker = tmp_path / "failed"
    (tmp_path / "lost_mod_q7.py").write_text(
        "from asynctasq import Task\n"
        "class Compensate(Task[None]):\n"
        "    queue = 'h'\n"
        "    async def handle(self) -> None:\n"
        "        raise AssertionError('a lost task does not run again')\n"
        "    async def failed(self, exception: Exception) -> None:\n"
        "        import pathlib\n"
        f"        pathlib.Path({str(marker)!r}).write_text(type(exception).__name__)\n"
    )
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    body = payload("lost_mod_q7:Compensate", attrs={})
    await driver.enqueue(OutgoingMessage("lost2", "h", body))
    [taken] = await driver.dequeue(["h"], limit=1, wait=1)  # its worker then died
    await driver.extend([taken], 0.05)
    await asyncio.sleep(0.1)
    assert "lost_mod_q7" not in sys.modules
    sys.path.insert(0, str(tmp_path))
    try:
        await drain([], dead(1), allowed_roots=[str(tmp_path)])
        for _ in range(100):
            if marker.exists():
                break
            await asyncio.sleep(0.02)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lost_mod_q7", None)
    [letter] = await driver.list_dead_letters(queue="h")
    assert letter.failure.exception_type == "asynctasq.errors.TaskLostError"
    assert marker.read_text() == "TaskLostError"


async def test_a_module_using_a_loop_where_none_runs_is_not_told_about_a_main_guard(
    tmp_path: Path,
) -> None:
    # "no running event loop" (get_running_loop at import, where no loop runs, as in a
    # process task's child) is another mistake: the main-guard hint would mislead.
    (tmp_path / "loopless_x7.py").write_text("import asyncio\nasyncio.get_running_loop()\n")
    try:
        resolver = TaskResolver([tmp_path])
        with pytest.raises(TaskNotFoundError) as failed:
            await asyncio.to_thread(resolver.resolve, "loopless_x7:t")
        assert "no running event loop" in str(failed.value)
        assert "__main__" not in str(failed.value)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("loopless_x7", None)
