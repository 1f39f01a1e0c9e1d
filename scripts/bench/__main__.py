"""``python -m scripts.bench`` (``make bench``): AsyncTasQ against peer task queues.

Runs every contender of `scripts.bench.peers.contenders` on the local servers with one
workload (N no-op tasks enqueued one call at a time, drained by one worker process at
concurrency 10, then dispatch-to-start latency), medians of 3 runs, and writes the table
into docs/benchmarks.md and the charts into docs/benchmarks/. ``--drivers`` also runs each
driver's own benchmark script (``scripts/bench/bench_<driver>.py``, its ``main()``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from scripts.bench.peers import brokers, report
from scripts.bench.peers.contenders import all_contenders
from scripts.bench.peers.harness import Workload, run_all
from scripts.bench.peers.venvs import VENVS

DRIVER_SCRIPTS = ("sqlite", "redis", "postgres", "mysql", "rabbitmq")


def run_driver_scripts(names: list[str]) -> None:
    """Each driver's own benchmark, by importing its module and calling its ``main()``."""
    for name in names:
        print(f"bench: scripts/bench/bench_{name}.py --write", flush=True)
        module = importlib.import_module(f"scripts.bench.bench_{name}")
        argv, sys.argv = sys.argv, [f"bench_{name}", "--write"]
        try:
            module.main()
        finally:
            sys.argv = argv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="AsyncTasQ against peer task queues.")
    parser.add_argument("--quick", action="store_true", help="1,000 tasks, 30 samples")
    parser.add_argument("--tasks", type=int, help="tasks per drain (default 5,000)")
    parser.add_argument("--samples", type=int, help="latency samples (default 100)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="comma-separated frameworks or framework/broker names")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--drivers", nargs="?", const=",".join(DRIVER_SCRIPTS), default="",
                        help="also run these drivers' own benchmarks (default: all)")  # fmt: skip
    args = parser.parse_args(argv)
    workload = Workload(
        tasks=args.tasks or (1_000 if args.quick else 5_000),
        samples=args.samples or (30 if args.quick else 100),
        repeats=args.repeats,
    )
    contenders = all_contenders(str(VENVS / "runs" / "sqlite.db"))
    if args.only:
        wanted = set(args.only.split(","))
        contenders = [c for c in contenders if c.framework in wanted or c.name in wanted]
    try:
        results = run_all(contenders, workload)
    finally:
        brokers.drop_all()
    print(report.table(contenders, results))
    if not args.no_write:
        command = (
            "make bench"
            if not argv and len(sys.argv) == 1
            else ("python -m scripts.bench " + " ".join(argv if argv is not None else sys.argv[1:]))
        )
        report.write(contenders, results, workload, command)
        print(f"bench: wrote {report.PAGE.relative_to(report.ROOT)} and charts", flush=True)
    if args.drivers:
        run_driver_scripts(args.drivers.split(","))


if __name__ == "__main__":
    main()
