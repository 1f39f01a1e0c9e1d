#!/usr/bin/env bash
# Runs every package's tests and the cross-package tests in one pytest session, spread over
# worker processes (pytest-xdist: most tests wait on servers, not on the CPU). --dist
# loadscope keeps each module (each test class) on one worker, so module-scoped setups such
# as the docs' and guides' examples run once.
#
#   ASYNCTASQ_TEST_WORKERS=0 scripts/test.sh ...   serially, in this process (debugging, pdb)
#   scripts/test.sh -n 0 ...                        the same; later options win
#   scripts/test.sh -k redis -x                     extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
# Two workers per core (they mostly wait), at most 8: 4 on a 2-core machine ran the suite in
# 7.5 min where 2 took 11 min.
cores=$(nproc 2>/dev/null || echo 2)
workers=${ASYNCTASQ_TEST_WORKERS:-$(( cores * 2 > 8 ? 8 : cores * 2 ))}
bash scripts/browser.sh  # the system chromium the dashboard's browser tests drive
exec .venv/bin/python -m pytest -n "$workers" --dist loadscope packages/*/tests tests "$@"
