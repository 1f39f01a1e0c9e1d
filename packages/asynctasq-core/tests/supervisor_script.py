"""A `Supervisor` in its own process, for test_supervisor.py: ``python supervisor_script.py
MODE MARKER_DIR [SHUTDOWN_TIMEOUT]``. Prints the supervisor's exit code last."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from asynctasq.supervisor import CHILD_VARIABLE, CHILDREN_VARIABLE, RestartPolicy, Supervisor
from asynctasq.supervisor.ran import report_ran

MODE, MARKS = sys.argv[1], Path(sys.argv[2])
# Long unless a test is about the deadline: a child that drains at once on SIGTERM must not
# be SIGKILLed because a loaded machine scheduled it late, nor a stuck one before a second
# signal reaches the supervisor.
SHUTDOWN_TIMEOUT = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0


def target(number: int) -> int:
    seen = f"{number} {os.environ[CHILD_VARIABLE]} {os.environ[CHILDREN_VARIABLE]} {os.getpid()}"
    (MARKS / f"child-{number}-{os.getpid()}").write_text(seen)
    if MODE == "crash":
        raise RuntimeError(f"worker {number} cannot start")
    if MODE == "poisoned" and len(list(MARKS.glob(f"killed-{number}-*"))) < 6:
        (MARKS / f"killed-{number}-{os.getpid()}").write_text("")
        report_ran()  # it took tasks, and one of them kills it
        os.kill(os.getpid(), signal.SIGKILL)
    if MODE == "poisoned":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        (MARKS / f"ready-{number}").write_text("")
        time.sleep(600)
    if MODE == "stuck":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a worker that never drains
        (MARKS / f"ready-{number}").write_text("")
        time.sleep(600)
    if MODE == "wait":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        (MARKS / f"ready-{number}").write_text("")
        time.sleep(600)
    return 0  # "done": finished its work


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    supervisor = Supervisor(
        target,
        3,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        stop_grace=0.3,
        restart_clean_exits=MODE != "done",
        restart_policy=RestartPolicy(backoff=0.01, max_backoff=0.05),
        poll_interval=0.02,
    )
    code = supervisor.run()
    print(f"exit={code}", flush=True)
    sys.exit(code)
