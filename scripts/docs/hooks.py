"""mkdocs hook: fills the generated sections of the documentation at build time.

A page asks for a section with an HTML comment on a line of its own:

* ``<!-- generated: cli-reference -->``: `scripts.docs.cli_reference.render`;
* ``<!-- generated: configuration-reference -->``: `scripts.docs.config_reference.render`;
* ``<!-- generated: driver-settings NAME -->``: the settings table of driver NAME (its
  constructor's keywords, types, defaults and environment variables);
* ``<!-- generated: driver-benchmarks -->``: links to the per-driver benchmark pages that
  exist (``docs/benchmarks/<driver>.md``, written by each driver's benchmark script).

Registered in ``mkdocs.yml`` (``hooks:``); ``make docs`` builds with ``--strict``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _importable() -> None:
    """mkdocs loads hooks by path (and restores sys.path): make `scripts.docs` importable."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _cli() -> str:
    _importable()
    from scripts.docs.cli_reference import render

    return render()


def _configuration() -> str:
    _importable()
    from scripts.docs.config_reference import render

    return render()


def _driver_settings(name: str) -> str:
    _importable()
    from scripts.docs.config_reference import driver_table

    return driver_table(name)


def driver_benchmarks(docs: Path = ROOT / "docs") -> str:
    """A list of links to the per-driver benchmark pages that exist."""
    pages = sorted((docs / "benchmarks").glob("*.md"))
    lines = []
    for page in pages:
        title = next(
            (
                line.lstrip("# ").strip()
                for line in page.read_text().splitlines()
                if line.startswith("# ")
            ),
            page.stem,
        )
        lines.append(f"* [{title}](benchmarks/{page.name})")
    return "\n".join(lines) or "(no per-driver benchmark has been written yet)"


GENERATORS: dict[str, Callable[..., str]] = {
    "cli-reference": _cli,
    "configuration-reference": _configuration,
    "driver-settings": _driver_settings,
    "driver-benchmarks": driver_benchmarks,
}


def expand(markdown: str) -> str:
    """Replace every ``<!-- generated: NAME -->`` line with its generated markdown."""
    out = []
    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("<!-- generated:") and stripped.endswith("-->"):
            name, *args = stripped.removeprefix("<!-- generated:").removesuffix("-->").split()
            if name not in GENERATORS:
                raise ValueError(f"unknown generated section {name!r}; known: {sorted(GENERATORS)}")
            out.append(GENERATORS[name](*args))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs event: expand generated sections before the page is rendered."""
    return expand(markdown)
