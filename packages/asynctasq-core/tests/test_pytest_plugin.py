"""The pytest plugin, tested in suites of its own (pytester, each in a fresh interpreter):
it is installed through the ``pytest11`` entry point, its fixtures work in a user's suite, and
it changes nothing for tests that do not use them."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

TASKS = '''
from asynctasq import task

seen = []


@task(queue="emails", max_attempts=2, retry_delay=3600)
async def send_welcome(address: str) -> str:
    seen.append(address)
    if address.startswith("flaky") and seen.count(address) == 1:
        raise ConnectionError("smtp timeout")
    return f"sent to {address}"


async def signup(address: str) -> None:
    """The application code under test: it dispatches."""
    await send_welcome(address).dispatch()
'''


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    [plugin] = [e for e in entry_points(group="pytest11") if e.name == "asynctasq"]
    assert plugin.value == "_asynctasq_pytest"


def test_loading_the_plugin_imports_nothing_of_asynctasq(pytester: pytest.Pytester) -> None:
    """A suite that never asks for the fixtures neither imports AsyncTasQ nor depends on
    it importing cleanly."""
    pytester.makepyfile(
        test_plain="""
import sys


def test_plain(request):
    assert "_asynctasq_pytest" in sys.modules  # the plugin is loaded...
    assert not [m for m in sys.modules if m == "asynctasq" or m.startswith("asynctasq.")]
    assert "asynctasq_queues" not in request.fixturenames
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_users_suite_uses_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(app=TASKS)
    pytester.makepyfile(
        test_app="""
import app


async def test_signup_dispatches_once(asynctasq_queues):
    await app.signup("ada@example.com")
    asynctasq_queues.assert_dispatched(app.send_welcome, times=1, args=("ada@example.com",))
    [outcome] = await asynctasq_queues.run_until_idle()
    assert (outcome.state, outcome.result) == ("succeeded", "sent to ada@example.com")


async def test_eager_retries_without_waiting(asynctasq_eager):
    await app.signup("flaky@example.com")
    assert app.seen[-2:] == ["flaky@example.com"] * 2
    [outcome] = asynctasq_eager.outcomes
    assert outcome.runs == 2 and outcome.retry_delays


def test_a_sync_test_can_use_them_too(asynctasq_queues):
    import asyncio

    asyncio.run(app.signup("sync@example.com"))
    asynctasq_queues.assert_dispatched(app.send_welcome, kwargs={})
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_failed_dispatch_assertion_shows_the_test_not_the_library(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(app=TASKS)
    pytester.makepyfile(
        test_app="""
import app


async def test_wrong_arguments(asynctasq_queues):
    await app.send_welcome(address="ada@example.com").dispatch()
    asynctasq_queues.assert_dispatched(app.send_welcome, args=("ada@example.com",))


async def test_not_expected(asynctasq_queues):
    await app.signup("bob@example.com")
    asynctasq_queues.assert_not_dispatched(app.send_welcome)
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert "kwargs={'address': 'ada@example.com'}" in output  # what was dispatched instead
    assert "matching = [" not in output and "def assert_dispatched" not in output


def test_tests_without_the_fixtures_are_untouched(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configuration, dispatch middleware and drivers are those of the user's suite before,
    between and after tests that use the fixtures."""
    pytester.makeini(INI)
    pytester.makepyfile(app=TASKS)
    pytester.makepyfile(
        test_order="""
import sys

import app
import asynctasq.config as config_module
from asynctasq.config import get_config
from asynctasq.middleware import dispatch_middleware


def test_1_nothing_configured_before():
    assert config_module.configured() is None  # the plugin read no configuration
    assert dispatch_middleware() == []
    assert get_config().driver == "redis"  # from the environment, as the user set it


async def test_2_uses_the_fixture(asynctasq_queues):
    assert get_config().driver == "memory"
    await app.signup("ada@example.com")


def test_3_configuration_is_back():
    assert get_config().driver == "redis"
    assert dispatch_middleware() == []
    assert "memory" not in get_config().drivers


def test_4_no_plugin_hooks():
    plugin = sys.modules["_asynctasq_pytest"]
    hooks = [name for name in vars(plugin) if name.startswith("pytest_")]
    assert hooks == []
"""
    )
    monkeypatch.setenv("ASYNCTASQ_DRIVER", "redis")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_a_suite_that_disables_the_plugin_runs_without_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
def test_plain(request):
    assert "asynctasq_queues" not in request.fixturenames


def test_fixture_unknown(asynctasq_queues):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asynctasq")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'asynctasq_queues' not found*"])
