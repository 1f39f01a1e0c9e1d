"""`scripts.spec_guides`: where the guides are, and their python blocks."""

from pathlib import Path

from scripts.spec_guides import guide_blocks, spec_dir


def test_shared_spec_wins_and_the_snapshot_is_the_fallback(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "tests" / "spec").mkdir(parents=True)
    assert spec_dir(repo) == repo / "tests" / "spec"
    (tmp_path / "shared" / "spec").mkdir(parents=True)
    assert spec_dir(repo) == tmp_path / "shared" / "spec"


def test_blocks_are_dedented_and_numbered_per_guide(tmp_path: Path) -> None:
    (tmp_path / "function-based-tasks.md").write_text(
        "text\n```python\nx = 1\n```\n1. step\n   ```python\n   y = 2\n   ```\n```bash\nls\n```\n"
    )
    blocks = guide_blocks(tmp_path)
    assert [(b.guide, b.index, b.code) for b in blocks] == [
        ("function-based-tasks.md", 0, "x = 1\n"),
        ("function-based-tasks.md", 1, "y = 2\n"),
    ]
