"""A SIGTERM while the worker starts (a slow broker connection, heavy task modules) stops it
like one sent later, exit status 0, instead of killing it with the signal's default action."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys

    from asynctasq.testing import MemoryDriver
    from asynctasq.worker import Worker


    class SlowToConnect(MemoryDriver):
        async def connect(self) -> None:
            print("connecting", flush=True)
            await asyncio.sleep(3)
            await super().connect()


    worker = Worker(SlowToConnect(), queues=["q"], poll_wait=0.1)
    asyncio.run(worker.run())
    print("stopped", worker.stopping, flush=True)
    """
)


def test_a_sigterm_during_start_up_stops_the_worker_cleanly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "connecting"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, (proc.returncode, err)
    assert out.strip() == "stopped True", err


async def test_a_stop_while_connecting_skips_the_rest_of_start_up() -> None:
    """Task modules are not imported and boot hooks not run once a stop was asked for while
    the broker connected: start-up work (heavy imports, opening pools) would only delay it.
    Nor do shutdown hooks run, with nothing booted to close."""
    import asyncio

    from asynctasq import Middleware
    from asynctasq.testing import MemoryDriver
    from asynctasq.worker import Worker

    events: list[str] = []

    class SlowToConnect(MemoryDriver):
        async def connect(self) -> None:
            events.append("connecting")
            await asyncio.sleep(0.3)
            await super().connect()

    class Boot(Middleware):
        def before_worker_boot(self, worker: object) -> None:
            events.append("booted")

        def after_worker_shutdown(self, worker: object) -> None:
            events.append("shut down")  # would close what boot never opened

    worker = Worker(
        SlowToConnect(),
        queues=["q"],
        poll_wait=0.1,
        install_signal_handlers=False,
        imports=["asynctasq_never_imported_module"],
        middleware=[Boot()],
    )
    runner = asyncio.create_task(worker.run())
    while not events:
        await asyncio.sleep(0.01)
    worker.request_stop()
    await asyncio.wait_for(runner, 10)  # the import of a missing module would raise here
    assert events == ["connecting"]


async def test_sigusr2_is_left_to_the_app_outside_the_supervisor() -> None:
    """SIGUSR2 is the supervisor's "stop now" to its worker processes only: a worker run
    anywhere else leaves whatever handler the application has for it."""
    import asyncio
    import signal

    from asynctasq.testing import MemoryDriver
    from asynctasq.worker import Worker

    def the_apps(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGUSR2, the_apps)
    try:
        worker = Worker(MemoryDriver(), queues=["q"], poll_wait=0.05)
        runner = asyncio.create_task(worker.run())
        await asyncio.sleep(0.3)
        assert signal.getsignal(signal.SIGUSR2) is the_apps
        worker.request_stop()
        await asyncio.wait_for(runner, 10)
        assert signal.getsignal(signal.SIGUSR2) is the_apps
    finally:
        signal.signal(signal.SIGUSR2, previous)
