"""Example tasks for the demo: every execution mode, a retry, and a failure kept for later."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

from asynctasq import print, task
from asynctasq.core.task import SyncTask, Task

attempts_file = os.environ.get("DEMO_STATE", "demo-attempts.txt")


@task(queue="emails")
async def send_email(to: str, subject: str) -> str:
    """Mode 1, async in the event loop."""
    await asyncio.sleep(0.2)
    print(f"[cyan]📧 email sent[/cyan] to [yellow]{to}[/yellow]: {subject}")
    return f"sent to {to}"


@task(queue="reports")
def build_report(report_id: int) -> str:
    """Mode 2, blocking code in a thread."""
    time.sleep(0.3)
    print(f"[green]📊 report {report_id} built[/green] (thread)")
    return f"report-{report_id}"


@task(queue="reports", process=True, timeout=30)
def crunch(rounds: int) -> str:
    """Mode 4, CPU-bound in a child process."""
    digest = b"asynctasq"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    print(f"[magenta]🧮 crunched {rounds:,} rounds[/magenta] in child pid {os.getpid()}")
    return digest.hex()[:12]


def _count_run() -> int:
    """Runs so far, kept in a file so that it survives between attempts."""
    with open(attempts_file, "a+") as f:
        f.write("x")
        f.seek(0)
        return len(f.read())


@task(queue="emails", max_attempts=3, retry_delay=0)
async def flaky_webhook(url: str) -> str:
    """Fails on its first run, succeeds on the retry."""
    runs = _count_run()
    if runs == 1:
        print(f"[yellow]⚠ webhook to {url} failed on run {runs}; it will be retried[/yellow]")
        raise ConnectionError("connection reset by peer")
    print(f"[green]✓ webhook delivered[/green] to {url} on run {runs}")
    return "delivered"


class ChargeCard(Task[dict[str, object]]):
    """A class-based task whose failure is kept as a dead letter with its error."""

    queue = "payments"
    max_retries = 1

    def __init__(self, user_id: int, amount: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.user_id = user_id
        self.amount = amount

    async def handle(self) -> dict[str, object]:
        if self.amount < 0:
            raise ValueError(f"amount cannot be negative: {self.amount}")
        print(f"[cyan]💳 charged[/cyan] user {self.user_id}: ${self.amount:.2f}")
        return {"user_id": self.user_id, "amount": self.amount}

    async def failed(self, exception: Exception) -> None:
        print(f"[red]✗ payment for user {self.user_id} failed for good:[/red] {exception}")


class Cleanup(SyncTask[int]):
    queue = "default"

    def handle_sync(self) -> int:
        print(f"[blue]🧹 cleanup ran[/blue] (task {self._task_id}, attempt {self._attempts})")
        return 0
