"""Every guide example core's guide test leaves to an ORM package is run by that package.

Core runs the guides' examples on the in-memory driver and leaves out those that name an ORM
(``NEEDS_ELSEWHERE``); each ORM package's guide test runs the examples that name it. This
checks the two selections meet, so no example falls between them (a skip there is not a
missing package: it is a hand-over, and this is the test that proves it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORM_PACKAGES = {
    "sqlalchemy": "asynctasq-orm-sqlalchemy",
    "django": "asynctasq-orm-django",
    "tortoise": "asynctasq-orm-tortoise",
}


def _load(package: str) -> ModuleType:
    path = ROOT / "packages" / package / "tests" / "guides" / "test_guide_examples.py"
    name = f"guide_coverage_{package.replace('-', '_')}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("word", list(ORM_PACKAGES))
def test_examples_core_leaves_to_an_orm_package_are_run_there(word: str) -> None:
    core = _load("asynctasq-core")
    package = ORM_PACKAGES[word]
    assert package in core.NEEDS_ELSEWHERE[word], "the skip reason names the package"
    reason = core.NEEDS_ELSEWHERE[word]
    left = {
        (guide, index) for guide, index, code in core.EXAMPLES if core.skip_reason(code) == reason
    }
    run_there = {(guide, index) for guide, index, _ in _load(package).EXAMPLES}
    assert left, f"no guide example names {word}: is the guide snapshot missing?"
    assert sorted(left - run_there) == [], f"left by core, not run by {package}"
