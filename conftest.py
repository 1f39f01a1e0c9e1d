"""Suite-wide rules for every package's tests (pytest loads this for any path in the checkout).

Under ``CI`` (set by ``.ci/run``), a test skipped because a package, a program or a server is
missing fails instead: a green CI run must have run everything. Skips for a reason that is
not about the environment (a capability a driver lacks, a fragment that is not a program)
stay skips.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator

import pytest

MISSING = re.compile(
    r"could not import|\binstalled\b|unreachable|not reachable|are needed|is needed|not found at",
    re.IGNORECASE,
)
"""Skip reasons that say the environment lacks something (importorskip says "could not
import"; fixtures say "unreachable", "is not installed", "are needed")."""


def missing_dependency(reason: str) -> bool:
    """Whether a skip `reason` says a package, program or server is missing."""
    return MISSING.search(reason) is not None


def skip_reason(report: pytest.TestReport) -> str:
    """The reason a skipped report gives (pytest keeps it as (path, line, reason))."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and os.environ.get("CI") and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        if missing_dependency(reason):
            report.outcome = "failed"
            report.longrepr = (
                f"skipped under CI: {reason}\n"
                "CI is set: every package, program and server must be there, so a test "
                "that would skip for want of one fails."
            )
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with slow tests first, in their order; then the rest.

    The suite runs whole modules per worker process (``scripts/test.sh``): a long module
    handed out last would run alone at the end while the other workers idle.
    """
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)
