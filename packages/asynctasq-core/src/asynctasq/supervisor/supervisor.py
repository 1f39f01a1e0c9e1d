"""`Supervisor`: N worker processes from one command, restarted when they die.

Each worker process is forked from the supervisor and runs the same target (the same
options for all). The supervisor:

* starts a process that died again, after a backoff that doubles while it keeps dying
  quickly; a slot that dies quickly too many times in a row is a crash loop: it is reported,
  the other processes are stopped, and `run` returns `EXIT_CRASH_LOOP`;
* on the first SIGTERM/SIGINT sends SIGTERM to every process (each finishes its running
  tasks within its own shutdown deadline and gives back the rest), and SIGKILLs those still
  running `stop_grace` seconds after that deadline;
* on a second signal sends every process a second SIGTERM (a worker then gives back its
  running tasks at once) and SIGKILLs what is left `abort_grace` seconds later.

A task interrupted by SIGKILL is not lost: its lease expires and it runs again elsewhere.

The processes run in their own process group, so a Ctrl-C on a terminal reaches only the
supervisor, which passes it on once (a worker that saw the terminal's signal as well would
take the supervisor's as a second one and stop at once). On Linux a process whose
supervisor is killed gets SIGTERM and drains like on a normal stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Literal

from asynctasq.supervisor.ran import RAN_VARIABLE, child_ran, open_report
from asynctasq.supervisor.restarts import RestartPolicy
from asynctasq.supervisor.sizing import CHILD_VARIABLE, CHILDREN_VARIABLE, fills_the_cpus
from asynctasq.utils import affinity
from asynctasq.utils.processes import die_with_parent
from asynctasq.worker.signals import ABORT_SIGNAL

log = logging.getLogger("asynctasq.supervisor")

EXIT_OK = 0
"""Every process stopped cleanly (drained on a stop, or finished its work)."""
EXIT_UNCLEAN = 1
"""A process failed while stopping, or was SIGKILLed at the deadline."""
EXIT_CRASH_LOOP = 3
"""A process kept dying right after it started (or exited with a fatal code)."""
EXIT_FORCED_BASE = 128
"""Stopped at once by a second signal: ``128 + the signal's number`` (130 SIGINT, 143 SIGTERM)."""

Target = Callable[[int], int | None]
"""What a worker process runs, given its number (1 to N); returns its exit code (None: 0)."""


@dataclass(slots=True)
class _Slot:
    """One of the N places a worker process runs in."""

    number: int
    pid: int | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    finished: bool = False
    ran_report: int | None = None
    """The end of the pipe its process reports on once it runs tasks (see `ran`)."""


class Supervisor:
    """Runs `workers` copies of `target`, each in its own forked process, until stopped.

    Example::

        from asynctasq import run
        from asynctasq.supervisor import Supervisor
        from asynctasq.worker import Worker


        def work(number: int) -> None:
            run(Worker("redis", queues=["default"]).run())


        if __name__ == "__main__":
            raise SystemExit(Supervisor(work, workers=4).run())

    Args:
        target: Runs one worker process; called in the child with its number (1 to N).
            Its return value is the process's exit code (None: 0); an exception is printed
            and exits 1. The child also finds its number in ``ASYNCTASQ_SUPERVISOR_CHILD``
            and N in ``ASYNCTASQ_SUPERVISOR_CHILDREN``.
        workers: How many processes (>= 1).
        shutdown_timeout: The processes' own shutdown deadline, in seconds.
        stop_grace: Seconds after `shutdown_timeout` before a process still running on a
            stop is SIGKILLed (giving back tasks and closing connections take time).
        abort_grace: Seconds after a second signal before what is left is SIGKILLed.
        restart_policy: Backoff and crash-loop limits (default: `RestartPolicy()`).
        restart_clean_exits: Start again a process that exited 0 by itself. False when
            the processes end by themselves once their work is done (burst mode): the
            supervisor then returns when every process has.
        fatal_exit_codes: Exit codes that mean every start would fail the same way (a
            usage or configuration error): the supervisor stops at the first one.
        install_signal_handlers: Handle SIGTERM/SIGINT (only in the main thread); without,
            call `request_stop` or `abort` from another thread.
        poll_interval: Seconds between checks of the processes.
        pin_cpus: Pin process ``i`` to the ``i``-th CPU this process may use (round robin),
            on Linux; see `asynctasq.utils.affinity`. ``"auto"``: only where the processes
            are one per CPU (`asynctasq.supervisor.sizing.fills_the_cpus`).

    Raises:
        ValueError: a count or a duration that is not usable, named in the message.
    """

    def __init__(
        self,
        target: Target,
        workers: int,
        *,
        shutdown_timeout: float = 30.0,
        stop_grace: float = 15.0,
        abort_grace: float = 3.0,
        restart_policy: RestartPolicy | None = None,
        restart_clean_exits: bool = True,
        fatal_exit_codes: Iterable[int] = (),
        install_signal_handlers: bool = True,
        poll_interval: float = 0.1,
        pin_cpus: bool | Literal["auto"] = False,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
        chosen = pin_cpus == "auto"
        if pin_cpus == "auto":
            pin_cpus = fills_the_cpus(workers)
        elif not isinstance(pin_cpus, bool):
            raise ValueError(f"pin_cpus must be True, False or 'auto', got {pin_cpus!r}")
        elif pin_cpus and not affinity.supported():
            raise ValueError("pin_cpus needs a platform that can pin processes to CPUs (Linux)")
        for name, value in (
            ("shutdown_timeout", shutdown_timeout),
            ("stop_grace", stop_grace),
            ("abort_grace", abort_grace),
            ("poll_interval", poll_interval),
        ):
            if not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0 seconds, got {value!r}")
        self.target = target
        self.workers = workers
        self.shutdown_timeout = float(shutdown_timeout)
        self.stop_grace = float(stop_grace)
        self.abort_grace = float(abort_grace)
        self.restart_policy = restart_policy or RestartPolicy()
        self.restart_clean_exits = restart_clean_exits
        self.fatal_exit_codes = frozenset(fatal_exit_codes)
        self.install_signal_handlers = install_signal_handlers
        self.poll_interval = max(0.01, float(poll_interval))
        self._slots = [_Slot(n) for n in range(1, workers + 1)]
        # Read once, so a worker started again runs on the CPU its first start had.
        self._cpus = affinity.allowed_cpus() if pin_cpus else []
        self._pin_chosen = chosen and bool(self._cpus)
        self._requests: list[int | None] = []  # signals (or None: a call) not yet acted on
        self._stopping = False
        self._aborted_by: int | None = None
        self._kill_at = float("inf")
        self._crash_loop = False
        self._unclean = False

    # -- control ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop every process as on a first SIGTERM (safe from another thread)."""
        self._requests.append(None)

    def abort(self) -> None:
        """Stop every process at once, as on a second signal (safe from another thread)."""
        self._requests.extend((None, None))

    @property
    def pids(self) -> dict[int, int]:
        """The live processes: their number -> pid."""
        return {s.number: s.pid for s in self._slots if s.pid is not None}

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> int:
        """Start the processes and supervise them until they have all stopped.

        Returns:
            The exit code for the supervisor's process: `EXIT_OK`, `EXIT_UNCLEAN`,
            `EXIT_CRASH_LOOP`, or ``EXIT_FORCED_BASE + signal`` after a second signal.
        """
        previous: dict[int, signal._HANDLER] = {}
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            log.info(
                "supervisor (pid %d): starting %d worker process(es)%s%s",
                os.getpid(),
                self.workers,
                f", each pinned to one of CPUs {_ranges(self._cpus)}" if self._cpus else "",
                " (pin_cpus auto: one worker per CPU)" if self._pin_chosen else "",
            )
            for slot in self._slots:
                self._spawn(slot)
            return self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._kill_all()  # only if the loop itself failed: nothing is left running

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Acted on by the loop (a handler can run between any two lines of it).
        self._requests.append(signum)

    def _loop(self) -> int:
        while True:
            self._act_on_requests()
            self._reap()
            now = time.monotonic()
            live = [s for s in self._slots if s.pid is not None]
            if self._stopping:
                if not live:
                    break
                if now >= self._kill_at:
                    self._kill_stragglers(live)
            else:
                for slot in self._slots:
                    if slot.pid is None and slot.restart_at is not None and now >= slot.restart_at:
                        self._spawn(slot)
                if all(s.finished for s in self._slots):
                    log.info("every worker process finished its work")
                    break
            time.sleep(self.poll_interval)
        return self._exit_code()

    def _exit_code(self) -> int:
        if self._crash_loop:
            return EXIT_CRASH_LOOP
        if self._aborted_by is not None:
            return EXIT_FORCED_BASE + self._aborted_by
        return EXIT_UNCLEAN if self._unclean else EXIT_OK

    def _act_on_requests(self) -> None:
        while self._requests:
            signum = self._requests.pop(0)
            name = signal.Signals(signum).name if signum is not None else "stop requested"
            if not self._stopping:
                log.info(
                    "%s: telling %d worker process(es) to finish their running "
                    "tasks (up to %.0f s); send again to stop them now",
                    name,
                    len(self.pids),
                    self.shutdown_timeout,
                )
                self._begin_stop()
            elif self._aborted_by is None:
                self._aborted_by = signum if signum is not None else int(signal.SIGTERM)
                log.warning(
                    "second %s: stopping every worker process now (running tasks "
                    "are given back); SIGKILL in %.0f s for any still running",
                    name if signum is not None else "stop request",
                    self.abort_grace,
                )
                # Not a second SIGTERM: a worker takes one that follows the first closely for
                # the first delivered again (systemd signals it directly too).
                self._signal_all(ABORT_SIGNAL or signal.SIGTERM)
                self._kill_at = min(self._kill_at, time.monotonic() + self.abort_grace)

    def _begin_stop(self) -> None:
        self._stopping = True
        self._kill_at = time.monotonic() + self.shutdown_timeout + self.stop_grace
        for slot in self._slots:
            slot.restart_at = None
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: signal.Signals) -> None:
        for slot in self._slots:
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, sig)

    def _kill_stragglers(self, live: list[_Slot]) -> None:
        for slot in live:
            assert slot.pid is not None
            if self._aborted_by is None:
                log.error(
                    "worker %d (pid %d) still running %.0f s after its shutdown "
                    "deadline: SIGKILL (its unfinished tasks run again when their leases end)",
                    slot.number,
                    slot.pid,
                    self.stop_grace,
                )
                self._unclean = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGKILL)
        self._kill_at = float("inf")  # reaped on the next rounds

    def _kill_all(self) -> None:
        for slot in self._slots:
            if slot.pid is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(slot.pid, 0)
            slot.pid = None
            if slot.ran_report is not None:
                with contextlib.suppress(OSError):
                    os.close(slot.ran_report)
                slot.ran_report = None

    # -- processes -------------------------------------------------------------------------
    def _reap(self) -> None:
        for slot in self._slots:
            if slot.pid is None:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: its status is unknown
                pid, status = slot.pid, 1 << 8
            if pid == 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            uptime = time.monotonic() - slot.started
            slot.pid = None
            ran_tasks = slot.ran_report is not None and child_ran(slot.ran_report)
            slot.ran_report = None
            self._on_exit(slot, pid, code, uptime, ran_tasks)

    def _on_exit(
        self, slot: _Slot, pid: int, code: int, uptime: float, ran_tasks: bool = False
    ) -> None:
        how = describe_exit(code)
        if self._stopping:
            # SIGTERM (or the abort signal) before the worker's handlers were installed, or
            # after they were removed: nothing was running, so that is a clean stop too.
            clean = code in (0, -signal.SIGTERM) or (ABORT_SIGNAL and code == -ABORT_SIGNAL)
            if not clean and self._aborted_by is None:
                self._unclean = True
            level = logging.INFO if clean else logging.WARNING
            log.log(level, "worker %d (pid %d) %s", slot.number, pid, how)
            return
        if code == 0 and not self.restart_clean_exits:
            slot.finished = True
            log.info("worker %d (pid %d) finished its work", slot.number, pid)
            return
        if code in self.fatal_exit_codes:
            self._crash_loop = True
            log.error(
                "worker %d (pid %d) %s, a usage or configuration error that every "
                "start would repeat: stopping every worker process (see its messages above)",
                slot.number,
                pid,
                how,
            )
            self._begin_stop()
            return
        policy = self.restart_policy
        # A process that died running tasks got past its set-up: a task (or the system) ended
        # it, and the tasks' own attempt limits stop a task that keeps killing workers.
        quick = policy.is_quick(uptime) and not ran_tasks
        slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
        if quick and policy.is_crash_loop(slot.quick_deaths):
            self._crash_loop = True
            log.error(
                "crash loop: worker %d died %d times in a row within %.0f s of "
                "starting (last: pid %d %s); stopping every worker process instead of "
                "starting it again. Its own messages above say why it died.",
                slot.number,
                slot.quick_deaths,
                policy.min_uptime,
                pid,
                how,
            )
            self._begin_stop()
            return
        delay = policy.delay(slot.quick_deaths)
        slot.restart_at = time.monotonic() + delay
        log.warning(
            "worker %d (pid %d) %s after %.1f s%s; starting it again in %.1f s",
            slot.number,
            pid,
            how,
            uptime,
            " while running tasks" if ran_tasks else "",
            delay,
        )

    def _spawn(self, slot: _Slot) -> None:
        slot.restart_at = None
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # or the child would write the parent's buffer again
        parent = os.getpid()
        read_end, write_end = open_report()
        try:
            pid = os.fork()
        except BaseException:
            os.close(read_end)
            os.close(write_end)
            raise
        if pid == 0:  # pragma: no cover - runs in the child, measured by the process tests
            for other in self._slots:  # the other workers' reports are not this one's
                if other.ran_report is not None:
                    with contextlib.suppress(OSError):
                        os.close(other.ran_report)
            os.close(read_end)
            os.environ[RAN_VARIABLE] = str(write_end)
            self._run_child(slot.number, parent)
        os.close(write_end)
        slot.ran_report = read_end
        with contextlib.suppress(OSError):  # the child does the same; whichever runs first
            os.setpgid(pid, pid)
        slot.pid = pid
        slot.started = time.monotonic()
        log.info("worker %d started (pid %d)", slot.number, pid)

    def _run_child(self, number: int, parent: int) -> None:  # pragma: no cover - in the child
        code = 1
        try:
            with contextlib.suppress(OSError):
                os.setpgid(0, 0)
            die_with_parent(parent, signal.SIGTERM)  # a worker drains, as on any stop
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.environ[CHILD_VARIABLE] = str(number)
            os.environ[CHILDREN_VARIABLE] = str(self.workers)
            if self._cpus:
                affinity.plan(number, self._cpus)  # the worker pins itself once started
            result = self.target(number)
            code = result if isinstance(result, int) else 0
        except SystemExit as exc:
            if isinstance(exc.code, int) or exc.code is None:
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            with contextlib.suppress(Exception):
                logging.shutdown()
            # Never back into the supervisor's code (or a test runner's) in the child.
            os._exit(code & 0xFF)


def _ranges(cpus: list[int]) -> str:
    """``0-3,8`` for CPUs 0, 1, 2, 3 and 8, as Linux lists them."""
    runs: list[list[int]] = []
    for cpu in cpus:
        if runs and cpu == runs[-1][-1] + 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def describe_exit(code: int) -> str:
    """``exited with code 1`` / ``was killed by SIGKILL``, from a `waitstatus_to_exitcode`."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


__all__ = [
    "EXIT_CRASH_LOOP",
    "EXIT_FORCED_BASE",
    "EXIT_OK",
    "EXIT_UNCLEAN",
    "Supervisor",
    "Target",
    "describe_exit",
]
