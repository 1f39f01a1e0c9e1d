"""Rewrite the generated sections of the documentation in place, or check they are current.

    python -m scripts.docs.generate          # rewrite every page that is stale
    python -m scripts.docs.generate --check  # exit 1 and name the stale pages

The sections (CLI reference, configuration reference, driver settings, benchmark links) are
rendered from the code by `scripts.docs.hooks.expand`; committing the result lets someone
reading `docs/` in the repository see the same text as the site.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scripts.docs.hooks import ROOT, expand

DOCS = ROOT / "docs"


def stale_pages(docs: Path = DOCS) -> dict[Path, str]:
    """Pages whose generated sections differ from a fresh render, with the fresh text."""
    stale: dict[Path, str] = {}
    for page in sorted(docs.rglob("*.md")):
        text = page.read_text()
        if "<!-- generated:" not in text:
            continue
        fresh = expand(text)
        if fresh != text:
            stale[page] = fresh
    return stale


def main(argv: list[str]) -> int:
    stale = stale_pages()
    if "--check" in argv:
        for page in stale:
            print(f"stale: {page.relative_to(ROOT)}", file=sys.stderr)
        if stale:
            print("run: make generated-docs", file=sys.stderr)
        return 1 if stale else 0
    for page, fresh in stale.items():
        page.write_text(fresh)
        print(f"rewrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
