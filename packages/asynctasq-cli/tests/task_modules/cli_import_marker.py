"""Imported with `--import`: proves the import happened (and after the roots were set)."""

import os
from pathlib import Path

_target = os.environ.get("CLI_TEST_IMPORT_MARKER")
if _target:
    Path(_target).write_text("imported\n")
