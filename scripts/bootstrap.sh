#!/usr/bin/env bash
# Creates .venv with the whole workspace installed editable, from scratch if needed.
# Idempotent and quick when nothing changed. uv lives in its own small venv (.tools) so that
# `uv sync`, which removes whatever the lock file does not list, never removes itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .tools/bin/uv ]; then
    "$PY" -m venv .tools
    .tools/bin/pip install --quiet "uv>=0.9"
fi
export UV_PYTHON="$PY" UV_PYTHON_DOWNLOADS=never
# Every package and every package's dev group (test-only drivers such as moto, psycopg).
# Not --locked: the lock is refreshed if a pyproject moved on, rather than failing the run.
.tools/bin/uv sync --all-packages --all-groups --quiet
