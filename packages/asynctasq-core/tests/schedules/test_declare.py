"""Declaring schedules: `schedule()`, ``@task(schedule=...)``, the class attribute; errors."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import asynctasq
from asynctasq import cron, every, schedule, task
from asynctasq.core.task import Task
from asynctasq.schedules import registry
from asynctasq.serializer import SerializationError


@pytest.fixture(autouse=True)
def _isolated_schedules() -> Iterator[None]:
    saved = dict(registry._schedules)
    registry._schedules.clear()
    yield
    registry._schedules.clear()
    registry._schedules.update(saved)


def test_names_import_from_asynctasq() -> None:
    assert asynctasq.cron is cron and asynctasq.every is every
    assert asynctasq.schedule is schedule


def test_a_task_declared_with_a_schedule_is_registered_under_its_name() -> None:
    @task(schedule=every(minutes=5))
    async def refresh() -> None: ...

    (found,) = registry.schedules()
    assert found.name == refresh.name == found.task_name
    assert found.when == every(minutes=5) and not found.catch_up
    made = found.make_task()
    assert made.function is refresh and made.args == ()


def test_a_scheduled_task_must_take_no_required_arguments() -> None:
    with pytest.raises(ValueError, match=r"no arguments.*'to'.*asynctasq.schedule\(email\("):

        @task(schedule=every(minutes=5))
        async def email(to: str) -> None: ...

    assert registry.schedules() == []


def test_the_schedule_must_be_cron_or_every() -> None:
    with pytest.raises(TypeError, match=r"cron\(\.\.\.\) or every"):

        @task(schedule="*/5 * * * *")  # type: ignore[arg-type]
        async def wrong() -> None: ...


def test_a_class_task_declares_its_schedule_as_an_attribute() -> None:
    class Cleanup(Task[None]):
        schedule = cron("0 3 * * *", tz="Europe/Berlin")

        async def handle(self) -> None: ...

    (found,) = registry.schedules()
    assert found.task_name == Cleanup._task_name
    assert isinstance(found.make_task(), Cleanup)


def test_a_class_task_with_required_arguments_cannot_be_scheduled() -> None:
    with pytest.raises(ValueError, match="built with no arguments"):

        class Report(Task[None]):
            schedule = every(hours=1)

            def __init__(self, kind: str, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.kind = kind

            async def handle(self) -> None: ...


def test_a_method_named_schedule_is_left_alone() -> None:
    class Planner(Task[None]):
        def schedule(self) -> str:
            return "mine"

        async def handle(self) -> None: ...

    assert registry.schedules() == []
    assert Planner().schedule() == "mine"


@task
async def send_report(kind: str, copies: int = 1) -> None: ...


def test_schedule_takes_a_task_call_with_its_arguments() -> None:
    found = schedule(send_report("daily"), cron("0 7 * * mon-fri"))
    assert found.name == send_report.name
    first, second = found.make_task(), found.make_task()
    assert first is not second and first.args == ("daily",)
    assert found.next_runs(2, after=datetime(2026, 5, 1, 8, 0, tzinfo=UTC)) == [
        datetime(2026, 5, 4, 7, 0, tzinfo=UTC),
        datetime(2026, 5, 5, 7, 0, tzinfo=UTC),
    ]


def test_the_same_task_twice_needs_a_name() -> None:
    schedule(send_report("daily"), cron("0 7 * * *"))
    with pytest.raises(ValueError, match="exists already.*name="):
        schedule(send_report("weekly"), cron("0 7 * * mon"))
    schedule(send_report("weekly"), cron("0 7 * * mon"), name="weekly-report")
    assert [s.name for s in registry.schedules()] == [send_report.name, "weekly-report"]


@pytest.mark.parametrize(
    "other",
    [
        lambda: send_report("monthly-summary"),
        lambda: send_report("daily", copies=2),
        lambda: send_report("daily").on_queue("reports"),
    ],
    ids=["arguments", "keyword", "options"],
)
def test_the_same_task_and_timetable_with_another_call_needs_a_name(other: Any) -> None:
    # Replacing the first would silently stop it firing.
    schedule(send_report("daily"), cron("0 7 * * *", tz="Europe/Berlin"))
    with pytest.raises(ValueError, match="exists already with other arguments or options.*name="):
        schedule(other(), cron("0 7 * * *", tz="Europe/Berlin"))
    (kept,) = registry.schedules()
    assert kept.make_task().args == ("daily",)


def test_a_declared_schedule_and_the_same_call_given_to_schedule_are_one() -> None:
    @task(schedule=every(minutes=5))
    async def ping() -> None: ...

    schedule(ping(), every(minutes=5))
    assert len(registry.schedules()) == 1


class Sync(Task[None]):
    async def handle(self) -> None: ...


TENANT_A, TENANT_B = "tenant-a", "tenant-b"


def _tenant(name: str) -> Any:
    return lambda t: name


def _key(t: Any, tenant: str) -> str:
    return tenant


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (lambda: lambda t: "tenant-a", lambda: lambda t: "tenant-b"),  # constants
        (lambda: lambda t: TENANT_A, lambda: lambda t: TENANT_B),  # names read
        (lambda: _tenant("a"), lambda: _tenant("b")),  # closed-over values
        (lambda: lambda t, k="a": k, lambda: lambda t, k="b": k),  # defaults
        (lambda: functools.partial(_key, tenant="a"), lambda: functools.partial(_key, tenant="b")),
    ],
    ids=["constants", "names", "closures", "defaults", "partial"],
)
def test_options_that_are_functions_are_told_apart_by_what_they_compute(
    first: Any, second: Any
) -> None:
    schedule(Sync(unique_key=first()), cron("0 7 * * *"))
    schedule(Sync(unique_key=first()), cron("0 7 * * *"))  # the same, declared again
    with pytest.raises(ValueError, match="exists already with other arguments or options"):
        schedule(Sync(unique_key=second()), cron("0 7 * * *"))


def test_an_option_that_refers_to_itself_is_compared_without_recursing_for_ever() -> None:
    def key(t: Any) -> str:
        return key(t) if t is None else "k"  # a recursive closure: its cell holds itself

    looped: list[Any] = []
    looped.append(looped)
    schedule(Sync(unique_key=key), cron("0 7 * * *"))
    schedule(Sync(unique_key=key), cron("0 7 * * *"))
    schedule(send_report("x").on_queue("q"), cron("0 7 * * *"), name="with-a-loop")
    assert len(registry.schedules()) == 2
    assert registry._shown(looped) is not None


def test_a_task_class_is_not_built_to_declare_its_schedule() -> None:
    built: list[int] = []

    class Stamped(Task[None]):
        schedule = every(minutes=5)

        def __init__(self) -> None:
            super().__init__()
            built.append(1)  # a constructor with effects, or reading the time

        async def handle(self) -> None: ...

    assert built == []
    assert [s.name for s in registry.schedules()] == [Stamped._task_name]


def test_declaring_the_same_schedule_again_replaces_it() -> None:
    # A module imported twice (run as __main__, then imported by name) declares it twice.
    schedule(send_report("daily"), cron("0 7 * * *"))
    schedule(send_report("daily"), cron("0 7 * * *"))
    assert len(registry.schedules()) == 1


@pytest.mark.parametrize("bad", [send_report, "send_report", None])
def test_schedule_refuses_what_is_not_a_task_call(bad: Any) -> None:
    with pytest.raises(TypeError, match="task call"):
        schedule(bad, every(minutes=1))


def test_an_argument_that_cannot_travel_fails_at_declaration() -> None:
    with pytest.raises(SerializationError):
        schedule(send_report(object()), every(minutes=1))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "x" * 201, "bad\x1bname", 5])
def test_unusable_names_are_refused(name: Any) -> None:
    with pytest.raises(ValueError, match="name"):
        schedule(send_report("x"), every(minutes=1), name=name)


def test_chain_settings_on_a_template_do_not_warn_as_undispatched(
    recwarn: pytest.WarningsRecorder,
) -> None:
    schedule(send_report("x").on_queue("reports"), every(minutes=1), name="routed")
    import gc

    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
