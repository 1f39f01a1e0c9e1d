"""Label values with bounded cardinality: every distinct value is a time series.

Task names come from messages (a hostile producer can invent any number of them), so a
process keeps at most `MAX_TASK_NAMES` distinct names as labels; later ones are counted
under ``other``. Names are cut to `MAX_LABEL_CHARS` characters.
"""

from __future__ import annotations

MAX_TASK_NAMES = 500
"""Distinct task names a worker process labels metrics with; the rest are ``other``."""
MAX_LABEL_CHARS = 200
"""Characters of a label value kept (a longer value is cut)."""
OTHER = "other"
"""The label value for task names beyond the cap."""


class BoundedNames:
    """Maps label values to themselves until `limit` distinct ones were seen, then to
    ``other``.

    Args:
        limit: Distinct values kept.
    """

    def __init__(self, limit: int = MAX_TASK_NAMES) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        self.limit = limit
        self._seen: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        """The label value to use for `value`."""
        label = self._seen.get(value)
        if label is not None:
            return label
        if len(self._seen) >= self.limit:
            return OTHER
        label = value[:MAX_LABEL_CHARS]
        self._seen[value] = label
        return label


__all__ = ["MAX_LABEL_CHARS", "MAX_TASK_NAMES", "OTHER", "BoundedNames"]
