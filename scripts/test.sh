#!/usr/bin/env bash
# Runs every package's tests and the cross-package tests, in one pytest session.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest packages/*/tests tests "$@"
