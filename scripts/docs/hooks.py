"""mkdocs hook: fills the generated sections of the documentation at build time.

A page holds each generated section between two HTML comments, each on a line of its own,
with the generated text committed between them (so the markdown read in the repository is
the truth too; `python -m scripts.docs.generate` rewrites them, and a test fails when one is
stale)::

    <!-- generated: NAME ARGS -->
    ...
    <!-- end generated -->

Sections:

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


END = "<!-- end generated -->"


def _section(stripped: str) -> tuple[str, list[str]] | None:
    if not (stripped.startswith("<!-- generated:") and stripped.endswith("-->")):
        return None
    name, *args = stripped.removeprefix("<!-- generated:").removesuffix("-->").split()
    if name not in GENERATORS:
        raise ValueError(f"unknown generated section {name!r}; known: {sorted(GENERATORS)}")
    return name, args


def expand(markdown: str) -> str:
    """`markdown` with every generated section's text rendered afresh between its markers.

    A start marker without an end marker (a new section) gets one.
    """
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        found = _section(line.strip())
        i += 1
        if found is None:
            out.append(line)
            continue
        name, args = found
        end = next((j for j in range(i, len(lines)) if lines[j].strip() == END), None)
        if end is not None:
            i = end + 1
        out.extend([line, "", GENERATORS[name](*args).rstrip("\n"), "", END])
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs event: expand generated sections before the page is rendered."""
    return expand(markdown)
