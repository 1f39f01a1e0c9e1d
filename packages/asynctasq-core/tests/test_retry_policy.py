"""Each task's retry policy: which level wins, what a lone ``retry_delay`` means, and the
errors at the call.

Every case dispatches to the memory driver and reads the message back, so what is checked
is what a worker receives.
"""

from __future__ import annotations

from typing import Any

import pytest

from asynctasq import task
from asynctasq.config import TaskDefaults, set_global_config
from asynctasq.core import envelope
from asynctasq.core.envelope import Envelope
from asynctasq.core.options import resolve
from asynctasq.core.task import BaseTask, Task, handed_over
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import PermanentError

DEFAULTS = {
    "retry_strategy": "exponential",
    "retry_delay": 60.0,
    "retry_max_delay": 900.0,
    "retry_jitter": True,
}
CHAIN = {
    "retry_strategy": "strategy",
    "retry_delay": "delay",
    "retry_max_delay": "max_delay",
    "retry_jitter": "jitter",
}
FIELDS = ("retry_strategy", "retry_delay", "retry_max_delay", "retry_jitter")

# For each setting: a configured default, a task's own value, a chain value; each differs
# from the one before it, so the winner is always visible.
LEVELS: dict[str, tuple[Any, Any, Any]] = {
    "retry_strategy": ("fixed", "exponential", "fixed"),
    "retry_delay": (60.0, 7.0, 3.0),
    "retry_max_delay": (900.0, 100.0, 50.0),
    "retry_jitter": (True, False, True),
}


async def received(t: BaseTask[Any]) -> Envelope:
    """What a worker receives for dispatching `t`."""
    await t.dispatch()
    driver = await get_driver()
    [delivery] = await driver.dequeue(["default"], limit=1, wait=0)
    return envelope.decode(delivery.payload)


def policy(env: Envelope) -> dict[str, Any]:
    return {name: getattr(env, name) for name in FIELDS}


def configure(**changes: Any) -> None:
    set_global_config(task_defaults={**DEFAULTS, **changes})


def function_task(**settings: Any) -> Any:
    @task(**settings)
    async def job() -> None: ...

    return job()


def class_task(**settings: Any) -> Any:
    cls = type("Job", (Task,), {"handle": lambda self: None, **settings})
    return cls()


MAKERS = {"function": function_task, "class": class_task}


# -- precedence: chain method > decorator / class attribute > task_defaults -------------------
@pytest.mark.parametrize("name", list(LEVELS))
async def test_the_configured_default_applies_when_the_task_sets_nothing(name: str) -> None:
    default, _, _ = LEVELS[name]
    configure(**{name: default})
    assert getattr(await received(function_task()), name) == default


@pytest.mark.parametrize("style", list(MAKERS))
@pytest.mark.parametrize("name", list(LEVELS))
async def test_the_tasks_own_value_wins_over_the_default(name: str, style: str) -> None:
    default, own, _ = LEVELS[name]
    configure(**{name: default})
    # Jitter is an exponential setting: for it, the task also says exponential.
    extra = {"retry_strategy": "exponential"} if name == "retry_jitter" else {}
    env = await received(MAKERS[style](**{name: own}, **extra))
    assert getattr(env, name) == own


@pytest.mark.parametrize("style", list(MAKERS))
@pytest.mark.parametrize("name", list(LEVELS))
async def test_a_chain_method_wins_over_the_tasks_own_value(name: str, style: str) -> None:
    default, own, chained = LEVELS[name]
    configure(**{name: default})
    extra = {"retry_strategy": "exponential"} if name == "retry_jitter" else {}
    t = MAKERS[style](**{name: own}, **extra)
    env = await received(t.retry(**{CHAIN[name]: chained}))
    assert getattr(env, name) == chained
    # for that dispatch only: the next one has the task's own value again
    assert getattr(await received(MAKERS[style](**{name: own}, **extra)), name) == own


@pytest.mark.parametrize("name", list(LEVELS))
async def test_a_chain_method_wins_over_the_default(name: str) -> None:
    default, own, _ = LEVELS[name]
    configure(**{name: default})
    t = function_task().retry(strategy="exponential") if name == "retry_jitter" else function_task()
    env = await received(t.retry(**{CHAIN[name]: own}))
    assert getattr(env, name) == own


# -- a lone retry_delay: the same wait every time (the guides' promise) -----------------------
@pytest.mark.parametrize("style", list(MAKERS))
async def test_a_lone_retry_delay_means_that_wait_every_time(style: str) -> None:
    configure()  # the default strategy is exponential, with jitter
    env = await received(MAKERS[style](retry_delay=30))
    assert policy(env) == {
        "retry_strategy": "fixed",
        "retry_delay": 30.0,
        "retry_max_delay": 900.0,
        "retry_jitter": False,
    }


async def test_retry_after_alone_means_that_wait_every_time() -> None:
    configure()
    env = await received(function_task().retry_after(30))
    assert (env.retry_strategy, env.retry_delay, env.retry_jitter) == ("fixed", 30.0, False)


@pytest.mark.parametrize("style", list(MAKERS))
async def test_a_delay_with_exponential_strategy_is_the_base(style: str) -> None:
    configure(retry_strategy="fixed", retry_jitter=False)
    env = await received(
        MAKERS[style](retry_strategy="exponential", retry_delay=5, retry_max_delay=300)
    )
    assert policy(env) == {
        "retry_strategy": "exponential",
        "retry_delay": 5.0,
        "retry_max_delay": 300.0,
        "retry_jitter": False,  # the default, which the task left alone
    }


async def test_a_chained_delay_is_the_base_of_the_decorators_exponential_strategy() -> None:
    configure()
    t = function_task(retry_strategy="exponential", retry_jitter=False).retry_after(30)
    env = await received(t)
    assert (env.retry_strategy, env.retry_delay, env.retry_jitter) == ("exponential", 30.0, False)


async def test_a_chained_strategy_makes_the_decorators_lone_delay_a_base() -> None:
    configure()
    env = await received(function_task(retry_delay=30).retry(strategy="exponential"))
    # The chain says exponential; jitter comes from the default again.
    assert (env.retry_strategy, env.retry_delay, env.retry_jitter) == ("exponential", 30.0, True)


async def test_a_task_setting_only_the_cap_keeps_the_default_strategy() -> None:
    configure()
    env = await received(function_task(retry_max_delay=120))
    assert policy(env) == {
        "retry_strategy": "exponential",
        "retry_delay": 60.0,
        "retry_max_delay": 120.0,
        "retry_jitter": True,
    }


async def test_fixed_waits_carry_no_jitter_whatever_the_default() -> None:
    configure(retry_strategy="fixed", retry_jitter=True)
    assert (await received(function_task())).retry_jitter is False
    env = await received(function_task(retry_jitter=True, retry_strategy="exponential"))
    assert env.retry_jitter is True
    chained = function_task(retry_strategy="exponential", retry_jitter=True).retry(strategy="fixed")
    assert (await received(chained)).retry_jitter is False


def test_resolve_follows_the_same_rules_without_dispatching() -> None:
    defaults = TaskDefaults(retry_strategy="exponential", retry_delay=60.0, retry_jitter=True)
    lone = resolve({"retry_delay": 30}, defaults)
    assert (lone.retry_strategy, lone.retry_delay, lone.retry_jitter) == ("fixed", 30, False)
    assert (lone.wire["rs"], lone.wire["rd"], lone.wire["rj"]) == ("fixed", 30, False)
    based = resolve({"retry_delay": 30, "retry_strategy": "exponential"}, defaults)
    assert (based.retry_strategy, based.retry_jitter) == ("exponential", True)
    assert based.wire["rm"] == based.retry_max_delay == defaults.retry_max_delay


def test_class_attributes_are_inherited_and_overridden() -> None:
    class Base(Task[None]):
        _abstract = True
        retry_strategy = "exponential"
        retry_delay = 2

    class Child(Base):
        retry_max_delay = 40

    assert Child._class_options["retry_strategy"] == "exponential"
    assert (Child._class_options["retry_delay"], Child._class_options["retry_max_delay"]) == (
        2,
        40,
    )


# -- errors at the call -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"retry_strategy": "linear"}, "retry_strategy must be 'fixed' or 'exponential'"),
        ({"retry_strategy": 1}, "retry_strategy must be"),
        ({"retry_max_delay": -1}, "retry_max_delay must be 0 or more"),
        ({"retry_max_delay": float("nan")}, "retry_max_delay must be a finite"),
        ({"retry_delay": float("inf")}, "retry_delay must be a finite"),
        ({"retry_jitter": "yes"}, "retry_jitter must be True or False"),
        (
            {"retry_strategy": "fixed", "retry_jitter": True},
            "retry_jitter=True shape exponential backoff only",
        ),
        (
            {"retry_strategy": "fixed", "retry_max_delay": 10},
            "retry_max_delay shape exponential backoff only",
        ),
        (
            {"retry_delay": 5, "retry_max_delay": 300},
            "add retry_strategy='exponential'",
        ),
        (
            {"retry_strategy": "exponential", "retry_delay": 30, "retry_max_delay": 10},
            r"retry_max_delay \(10 s\) is less than retry_delay \(30 s\)",
        ),
        ({"retry_on": ValueError()}, "retry_on takes exception classes"),
        ({"retry_on": (ValueError, "KeyError")}, "retry_on takes exception classes"),
        ({"retry_on": (KeyboardInterrupt,)}, "retry_on takes exception classes"),
        ({"dont_retry_on": int}, "dont_retry_on takes exception classes"),
        ({"retry_on": ()}, "leave retry_on out to retry on every exception"),
        ({"retry_on": (OSError, PermanentError)}, "PermanentError"),
    ],
)
def test_bad_settings_fail_at_the_decorator(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        task(**settings)(lambda: None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"retry_strategy": "linear"}, "Job.retry_strategy: retry_strategy must be"),
        ({"retry_jitter": 1}, "Job.retry_jitter: retry_jitter must be True or False"),
        ({"retry_delay": 5, "retry_jitter": True}, "Job: a retry_delay without a retry_strategy"),
        ({"dont_retry_on": "ValueError"}, "Job: dont_retry_on takes exception classes"),
    ],
)
def test_bad_class_attributes_fail_at_the_class_naming_it(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        class_task(**settings)


@pytest.mark.parametrize(
    ("chain", "error", "message"),
    [
        ({}, TypeError, "needs at least one of strategy=, delay=, max_delay=, jitter="),
        ({"strategy": "doubling"}, ValueError, "retry_strategy must be"),
        ({"delay": -1}, ValueError, "retry_delay must be 0 or more"),
        ({"max_delay": True}, ValueError, "retry_max_delay must be a number"),
        ({"strategy": "fixed", "jitter": True}, ValueError, r"\.retry\(\): retry_jitter=True"),
        ({"delay": 10, "max_delay": 60}, ValueError, "add retry_strategy='exponential'"),
    ],
)
@pytest.mark.parametrize("style", list(MAKERS))
def test_bad_chain_values_fail_at_the_chain_method(
    chain: dict[str, Any], error: type[Exception], message: str, style: str
) -> None:
    t = MAKERS[style]()
    with pytest.raises(error, match=message):
        t.retry(**chain)


def test_a_chain_call_is_checked_on_its_own_values_only() -> None:
    # The decorator's jitter shapes its exponential waits; a dispatch switching to fixed
    # waits is fine, and carries no jitter.
    t = function_task(retry_strategy="exponential", retry_jitter=True).retry(strategy="fixed")
    assert t._settings()["retry_strategy"] == "fixed"
    handed_over(t)  # not dispatched, on purpose
