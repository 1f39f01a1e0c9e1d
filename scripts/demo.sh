#!/usr/bin/env bash
# The main job: queue example tasks in a SQLite file (no server needed), then run a worker
# that processes them and exits when the queues are empty; finally show the queues, where
# the one task that failed for good waits as a dead letter with its error.
set -euo pipefail
cd "$(dirname "$0")/../examples/demo"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASYNCTASQ_SQLITE_PATH="$work/demo.db" DEMO_STATE="$work/attempts.txt"
unset ASYNCTASQ_DRIVER  # the embedded default: SQLite
bin=../../.venv/bin
"$bin/python" dispatch.py
"$bin/asynctasq" worker --queues emails,reports,payments,default --concurrency 10 --burst \
    --import demo_tasks
"$bin/asynctasq" queues
"$bin/asynctasq" dead-letters list
