"""Fixtures: worker processes on a private Redis prefix, free ports, scrapes."""

from __future__ import annotations

import sys
from pathlib import Path

TASKS_DIR = Path(__file__).parent / "task_modules"
if str(TASKS_DIR) not in sys.path:
    sys.path.insert(0, str(TASKS_DIR))
