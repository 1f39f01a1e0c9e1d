#!/usr/bin/env bash
# Creates .venv with the whole workspace installed editable, from scratch if needed.
# Idempotent and quick when nothing changed. uv lives in its own small venv (.tools) so that
# `uv sync`, which removes whatever the lock file does not list, never removes itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    # The oldest supported Python first (what CI tests), then any newer one.
    for candidate in python3.11 python3.12 python3.13 python3.14 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            PYTHON=$candidate
            break
        fi
    done
fi
PY=${PYTHON:?no Python 3.11 or newer on PATH: set PYTHON=/path/to/python3.x}
if [ ! -x .tools/bin/uv ]; then
    "$PY" -m venv .tools
    .tools/bin/pip install --quiet "uv>=0.9"
fi
export UV_PYTHON="$PY" UV_PYTHON_DOWNLOADS=never
# Every package and every package's dev group (test-only drivers such as moto, psycopg).
# Not --locked: the lock is refreshed if a pyproject moved on, rather than failing the run.
.tools/bin/uv sync --all-packages --all-groups --quiet
# Where Python is told not to cache bytecode (PYTHONDONTWRITEBYTECODE, as on this project's CI
# machines), every process compiles every module it imports from source again: 2.6 s to start
# a worker there, against 1.0 s from cached bytecode, in each of the hundreds of processes the
# tests start. Cache it once here: a minute the first time; 1.5 s after, skipping what is up
# to date (in one process: a pool of processes takes 11 s just to find nothing to do).
# Only a cache: a file some package ships that does not compile must not fail the install.
if [ -n "${PYTHONDONTWRITEBYTECODE:-}" ]; then
    .venv/bin/python -m compileall -q .venv/lib packages/*/src >/dev/null || true
fi
