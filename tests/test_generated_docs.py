"""The generated reference sections committed in docs/ are what the code renders today."""

from __future__ import annotations

from pathlib import Path

from scripts.docs.generate import stale_pages
from scripts.docs.hooks import END, expand


def test_committed_generated_sections_are_current() -> None:
    stale = [str(p) for p in stale_pages()]
    assert stale == [], f"stale generated docs (run: make generated-docs): {stale}"


def test_a_section_is_rendered_between_its_markers_and_the_rest_is_kept() -> None:
    page = "# Title\n\n<!-- generated: driver-benchmarks -->\nold text\n" + END + "\n\nafter\n"
    fresh = expand(page)
    assert fresh.startswith("# Title\n\n<!-- generated: driver-benchmarks -->\n\n")
    assert "old text" not in fresh and fresh.endswith(END + "\n\nafter\n")
    assert expand(fresh) == fresh  # rendering is stable: a fresh page is not stale


def test_a_new_section_gets_its_end_marker(tmp_path: Path) -> None:
    fresh = expand("<!-- generated: driver-benchmarks -->\n")
    assert fresh.rstrip("\n").endswith(END)
    (tmp_path / "page.md").write_text(fresh)
    assert stale_pages(tmp_path) == {}
