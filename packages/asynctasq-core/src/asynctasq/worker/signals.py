"""Stop signals: when a second one means "stop now", and the supervisor's own "stop now"."""

from __future__ import annotations

import signal

SIGNAL_ECHO = 0.3
"""Seconds within which a second SIGTERM/SIGINT is taken as the first one delivered again,
not as "stop now": systemd's default KillMode signals every process of a service, a
supervisor's worker processes included, and the supervisor then passes its own signal on
milliseconds later. Measured when the worker's event loop handles the signals: two that
arrive while the loop is blocked count as one."""

ABORT_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR2", None)
"""The supervisor's "stop now" to its worker processes: they give back what they run at
once, however soon after the first stop it comes (no echo window applies to it)."""

__all__ = ["ABORT_SIGNAL", "SIGNAL_ECHO"]
