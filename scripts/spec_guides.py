"""The user guides' code examples, for the tests that run them (core's and the ORM packages').

The guides are the spec: `../shared/spec/` beside a checkout, or the snapshot in
`tests/spec/` when the shared copy is not there.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

GUIDES = ("function-based-tasks.md", "class-based-tasks.md")
_FENCED = re.compile(r"^[ \t]*```python\n(.*?)^[ \t]*```", re.S | re.M)


@dataclass(frozen=True, slots=True)
class GuideBlock:
    """One ```python block: which guide, its position in that guide, its dedented code."""

    guide: str
    index: int
    code: str


def spec_dir(repo_root: Path) -> Path:
    """Where the guides are for the checkout at `repo_root` (the shared copy wins)."""
    shared = repo_root.parent / "shared" / "spec"
    snapshot = repo_root / "tests" / "spec"
    return snapshot if not shared.is_dir() and snapshot.is_dir() else shared


def guide_blocks(spec: Path, guides: tuple[str, ...] = GUIDES) -> list[GuideBlock]:
    """Every python block of `guides` found in `spec`, in order (none if absent)."""
    found: list[GuideBlock] = []
    for guide in guides:
        path = spec / guide
        if path.is_file():
            for i, block in enumerate(_FENCED.findall(path.read_text())):
                found.append(GuideBlock(guide, i, textwrap.dedent(block)))
    return found
