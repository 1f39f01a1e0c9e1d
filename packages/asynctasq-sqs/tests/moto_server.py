"""Run moto's server with atomic ReceiveMessage: ``python moto_server.py -H 127.0.0.1 -p PORT``.

moto's server answers requests on threads, and its ReceiveMessage picks visible messages
and marks them received without a lock, so two concurrent receives can lease the same
message (seen in about one run in five of 12 consumers draining 300 messages). Real SQS
leases atomically (its rare duplicate deliveries are a separate, documented effect). This
wrapper serialises the pick-and-mark step and keeps long polling: between attempts it waits
on the queue's own condition, outside the lock, so a long poll never blocks other requests.
Used by the tests, the crash test and the benchmark; nothing here replaces SQS behaviour.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.core.utils import unix_time
from moto.server import main
from moto.sqs import models

POLL_STEP = 0.1
"""Longest sleep of a long poll between looks (moto wakes waiters on sends, not on time)."""

_lock = threading.Lock()  # the wrapped methods never call each other
_receive = models.SQSBackend.receive_message


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return wrapper


def _receive_message(
    self: models.SQSBackend,
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> list[models.Message]:
    deadline = unix_time() + (wait_seconds_timeout or 0)
    while True:
        with _lock:
            found = _receive(
                self, queue_name, count, 0, visibility_timeout, message_attribute_names
            )
        left = deadline - unix_time()
        if found or left <= 0:
            return found
        self.get_queue(queue_name).wait_for_messages(min(left, POLL_STEP))  # type: ignore[arg-type]


models.SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]
for _name in ("delete_message", "change_message_visibility", "send_message", "purge_queue"):
    setattr(models.SQSBackend, _name, _locked(getattr(models.SQSBackend, _name)))

if __name__ == "__main__":
    main()
