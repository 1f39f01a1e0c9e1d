"""``python spawn.py N CMD...``: run N copies of a worker command side by side, for a
framework without a multi-process worker mode. Standard library only.

The copies stay in this process's group, so the scaling run's SIGTERM to the group reaches
them all; this process waits, and once any copy exits it stops the rest and exits with that
copy's code (a dead worker must not look like a slow one).
"""

import signal
import subprocess
import sys
import time


def main() -> int:
    n, command = int(sys.argv[1]), sys.argv[2:]
    children = [subprocess.Popen(command) for _ in range(n)]
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while not stopping:
        done = [c for c in children if c.poll() is not None]
        if done:
            code = done[0].returncode or 1
            break
        time.sleep(0.1)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(50)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
