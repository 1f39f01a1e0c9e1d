"""When a stop signal is a second one ("stop now") and when it is the first delivered again."""

from __future__ import annotations

SIGNAL_ECHO = 0.3
"""Seconds within which a second SIGTERM/SIGINT is taken as the first one delivered again,
not as "stop now": systemd's default KillMode signals every process of a service, a
supervisor's worker processes included, and the supervisor then passes its own signal on
milliseconds later. A supervisor that means a second signal sends it later than this."""

__all__ = ["SIGNAL_ECHO"]
