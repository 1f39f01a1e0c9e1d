"""A cross-process doorbell: producers wake consumers waiting on the same database file.

SQLite cannot notify another process of a commit, so a waiting dequeue polls. The bell makes
the wait short without polling faster: every process with a waiting consumer binds a UNIX
datagram socket in a directory next to the database (``<file>-bell/``), and after a commit
that may have made messages ready a process sends one byte to each socket there. A thread
of the receiving process blocks on its socket (no CPU while idle) and turns a datagram into
the in-process `Wakeup`, which the waiting dequeue already listens to.

Nothing depends on a ring arriving. Polling stays on, at a slower pace while this process
listens (`LISTENING_POLL_INTERVAL`), so a lost datagram costs latency, never a task. Rings
are bounded and never block or fail the producer: sends are non-blocking (a full receiver
already has a wake-up pending), a socket nobody listens on any more (its process died) is
removed, anything that is not one of our sockets is skipped, and at most `MAX_LISTENERS`
sockets are rung. Where the directory or the socket cannot be made (no AF_UNIX, a path over
the socket-name limit, a read-only directory) the bell stays off and the driver polls as
before. The directory and sockets take the database file's permission bits, so whoever may
enqueue may ring and nobody else.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import re
import secrets
import socket
import stat
import threading
import time
import weakref
from typing import Any

from asynctasq_sqlite._wakeup import Wakeup, wakeup_for

log = logging.getLogger("asynctasq.sqlite")

AVAILABLE = hasattr(socket, "AF_UNIX")
"""Whether this platform has UNIX datagram sockets (set False to poll only)."""
LISTENING_POLL_INTERVAL = 1.0
"""Longest pause (seconds) between a waiting dequeue's own checks while the bell listens:
the safety net for a ring that never came."""
MAX_LISTENERS = 256
"""The most sockets one ring reaches (bounded work per commit whatever the directory holds)."""
SUFFIX = "-bell"
"""The directory of sockets is the database path plus this."""
_NAME = re.compile(r"[0-9a-f]{16}\.sock")
_SCAN_SETTLE_NS = 100_000_000
"""A listing is trusted only when taken this long after the directory last changed: file
system timestamps are coarse (a clock tick), so a socket bound in the same tick as the
listing would leave the directory's mtime unchanged."""
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes, NUL included (Linux; 104 on the BSDs)
_DRAIN = 1024
"""Datagrams read per wake-up at most (the rest wait for the next one)."""


class Bell:
    """The bell of one database file in this process, in front of its in-process `Wakeup`.

    It reads like a `Wakeup` (`generation`, `wait`, `notify`), and `notify` also rings the
    other processes. `listen` binds this process's socket the first time a consumer waits.
    """

    def __init__(self, path: str, wakeup: Wakeup) -> None:
        self._wakeup = wakeup
        self._dir = path + SUFFIX
        self._db_path = path
        self._lock = threading.Lock()
        self._listener: _Listener | None = None
        self._failed = False
        self._owners: weakref.WeakSet[Any] = weakref.WeakSet()
        self._targets: list[str] = []
        self._scanned: tuple[int, int] | None = None  # (dir mtime_ns, scan time ns)
        self.rings = 0
        """Datagrams this process sent (for tests and diagnostics)."""
        self.wakeups = 0
        """Wake-ups this process's listener delivered (for tests and diagnostics)."""

    # -- the Wakeup face -----------------------------------------------------------------
    @property
    def generation(self) -> int:
        """The in-process wake-up generation (see `Wakeup`)."""
        return self._wakeup.generation

    async def wait(self, generation: int, seconds: float) -> bool:
        """Wait for a notify in this process or a ring from another (see `Wakeup.wait`)."""
        return await self._wakeup.wait(generation, seconds)

    def notify(self) -> None:
        """Wake waiters here at once and ring every other listening process."""
        self._wakeup.notify()
        self.ring()

    # -- listening -----------------------------------------------------------------------
    @property
    def listening(self) -> bool:
        """Whether this process's socket is bound and its thread receiving."""
        listener = self._listener
        return listener is not None and listener.alive

    def listen(self, owner: Any) -> bool:
        """Make sure this process listens for rings on behalf of `owner` (a driver).

        Returns:
            True when the bell listens (waits may poll slowly), False when it is off.
        """
        if self.listening:
            self._owners.add(owner)
            return True
        if self._failed or not AVAILABLE:
            return False
        with self._lock:
            if self._listener is None or not self._listener.alive:
                try:
                    self._listener = _Listener(self._dir, self._db_path, self._on_ring)
                except OSError as exc:
                    self._failed = True  # one attempt per process; polling works without it
                    log.info(
                        "asynctasq: no cross-process wake-up for %s (%r); polling", self._dir, exc
                    )
                    return False
            self._owners.add(owner)
        return True

    def release(self, owner: Any) -> None:
        """`owner` closed: stop listening when no other driver of this process needs it."""
        with self._lock:
            self._owners.discard(owner)
            if self._owners or self._listener is None:
                return
            listener, self._listener = self._listener, None
        listener.stop()

    def poll_interval(self, configured: float) -> float:
        """The longest pause between a waiting dequeue's checks: slower while listening."""
        return max(configured, LISTENING_POLL_INTERVAL) if self.listening else configured

    def _on_ring(self) -> None:
        self.wakeups += 1
        self._wakeup.notify()

    # -- ringing -------------------------------------------------------------------------
    def ring(self) -> None:
        """Send one byte to every other process's socket; never blocks, never raises."""
        if not AVAILABLE:
            return
        try:
            targets = self._current_targets()
        except OSError:
            return  # no directory: nobody listens
        if not targets:
            return
        own = self._listener.path if self._listener is not None else None
        sender = _sender()
        stale = False
        for target in targets:
            if target == own:
                continue
            try:
                sender.sendto(b"\x01", target)
                self.rings += 1
            except (BlockingIOError, InterruptedError):
                pass  # its buffer is full: it has wake-ups pending already
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                    stale = True
                    if exc.errno == errno.ECONNREFUSED:
                        _unlink_stale(target)
                # Anything else (permissions, ...) only costs that process some latency.
        if stale:
            self._scanned = None

    def _current_targets(self) -> list[str]:
        info = os.stat(self._dir)
        now = time.time_ns()
        scanned = self._scanned
        if scanned is not None and scanned[0] == info.st_mtime_ns:
            return self._targets
        targets: list[str] = []
        with os.scandir(self._dir) as entries:
            for entry in entries:
                if len(targets) >= MAX_LISTENERS:
                    break
                if not _NAME.fullmatch(entry.name):
                    continue
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                        targets.append(entry.path)
        self._targets = targets
        settled = now - info.st_mtime_ns > _SCAN_SETTLE_NS
        self._scanned = (info.st_mtime_ns, now) if settled else None
        return targets


class _Listener:
    """This process's bound socket and the thread that blocks on it."""

    def __init__(self, directory: str, db_path: str, on_ring: Any) -> None:
        mode = stat.S_IMODE(os.stat(db_path).st_mode) & 0o666
        _make_dir(directory, mode)
        self.path = os.path.join(directory, f"{secrets.token_hex(8)}.sock")
        if len(os.fsencode(self.path)) > _MAX_SOCKET_PATH:
            raise OSError(errno.ENAMETOOLONG, f"socket path too long: {self.path!r}")
        self._token = secrets.token_bytes(16)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(self.path)
            os.chmod(self.path, mode)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise
        self._socket = sock
        self._on_ring = on_ring
        self._stopped = False
        self._pid = os.getpid()
        self._thread = threading.Thread(
            target=self._run, name=f"asynctasq-sqlite-bell {directory}", daemon=True
        )
        self._thread.start()
        _live.add(self)

    @property
    def alive(self) -> bool:
        return not self._stopped and self._pid == os.getpid() and self._thread.is_alive()

    def _run(self) -> None:
        sock = self._socket
        while True:
            try:
                data = sock.recv(64)
            except OSError:
                return
            stop = data == self._token
            for _ in range(_DRAIN):  # one wake-up for everything that queued meanwhile
                try:
                    stop = sock.recv(64, socket.MSG_DONTWAIT) == self._token or stop
                except OSError:
                    break
            if stop or self._stopped:
                return
            self._on_ring()

    def stop(self) -> None:
        """Stop the thread, close and remove the socket (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self._pid == os.getpid():
            with contextlib.suppress(OSError):
                _sender().sendto(self._token, self.path)
            self._thread.join(timeout=1.0)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self._socket.close()
        _live.discard(self)


def _make_dir(directory: str, file_mode: int) -> None:
    """Create the socket directory with the database file's permissions (x where r)."""
    dir_mode = file_mode | ((file_mode & 0o444) >> 2)
    try:
        os.mkdir(directory, dir_mode)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(directory).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, f"not a directory: {directory!r}") from None
        return
    os.chmod(directory, dir_mode)  # mkdir's mode is filtered by the umask


def _unlink_stale(path: str) -> None:
    """Remove a socket nobody is bound to (its process died without cleaning up)."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


_senders: dict[int, socket.socket] = {}


def _sender() -> socket.socket:
    """This process's unbound, non-blocking datagram socket for ringing."""
    pid = os.getpid()
    sender = _senders.get(pid)
    if sender is None:
        # A forked child must not share the parent's: close its copy of the descriptor (the
        # parent's stays open) rather than leave the object to the collector.
        for inherited in _senders.values():
            inherited.close()
        _senders.clear()
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        _senders[pid] = sender
    return sender


_registry: weakref.WeakValueDictionary[tuple[int, str], Bell] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()
_live: weakref.WeakSet[_Listener] = weakref.WeakSet()


def bell_for(path: str) -> Bell:
    """The `Bell` of `path` in this process (shared by every driver on that file)."""
    real = os.path.realpath(path)
    key = (os.getpid(), real)
    with _registry_lock:
        bell = _registry.get(key)
        if bell is None:
            bell = _registry[key] = Bell(real, wakeup_for(path))
        return bell


@atexit.register
def _remove_sockets() -> None:
    for listener in list(_live):
        listener.stop()
    sender = _senders.pop(os.getpid(), None)  # stop() above may have used it
    if sender is not None:
        sender.close()


__all__ = ["AVAILABLE", "LISTENING_POLL_INTERVAL", "Bell", "bell_for"]
