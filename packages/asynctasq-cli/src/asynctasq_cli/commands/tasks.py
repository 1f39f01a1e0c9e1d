"""``asynctasq status ID``, ``asynctasq tasks`` and ``asynctasq cancel ID...``.

Status records exist for tracked tasks only (``track=True`` on the task, or
``task_defaults.track`` for all): an untracked task has no status, never a guessed one.
Everything in a record was written by a process that can write to the broker (its error
message, its progress note), so every value is shown literally.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

import asynctasq
from asynctasq.core.results import canonical_task_id
from asynctasq.drivers.base import EventLog, StatusStore
from asynctasq.lifecycle import CancelOutcome, TaskState, TaskStatus
from asynctasq.runner import run
from asynctasq_cli import session
from asynctasq_cli.capability import needing
from asynctasq_cli.output import CliError, literal, print_json, reporting_errors, stdout, visible
from asynctasq_cli.settings import (
    ConnectionOptions,
    load_config,
    takes_connection,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]

STATE_STYLES = {
    TaskState.QUEUED: "cyan",
    TaskState.SCHEDULED: "cyan",
    TaskState.RUNNING: "bold blue",
    TaskState.RETRYING: "yellow",
    TaskState.SUCCEEDED: "green",
    TaskState.FAILED: "bold red",
    TaskState.CANCELLED: "magenta",
    TaskState.EXPIRED: "dim",
}

NOT_FOUND_HINT = (
    "only tasks dispatched with track=True (or task_defaults.track) have a status, "
    "and a finished task's record expires"
)


def when(moment: datetime | None) -> str:
    """A time in the local zone to the second, or an empty string."""
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def percent(fraction: float) -> str:
    """``0.428`` -> ``42%``: rounded down, so ``100%`` means done."""
    return f"{math.floor(round(fraction * 100, 6))}%"


def progress_text(status: TaskStatus) -> str:
    """``42% resized 4/10``, or an empty string when no progress was reported."""
    if status.progress is None:
        return ""
    if status.progress_message:
        return f"{percent(status.progress)} {status.progress_message}"
    return percent(status.progress)


def error_text(status: TaskStatus) -> str:
    """``ValueError: broken input`` (the last failed run), or an empty string."""
    if status.error_type is None and status.error_message is None:
        return ""
    kind = (status.error_type or "error").rsplit(".", 1)[-1]
    return f"{kind}: {status.error_message or ''}"


def _first_line(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def state_cell(state: TaskState) -> Text:
    """The state, coloured by how it went."""
    return Text(str(state), style=STATE_STYLES.get(state, ""))


def status_view(status: TaskStatus) -> Table:
    """One task's status, field by field (every value shown literally)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    grid.add_row("task id", Text(visible(status.task_id), style="bold"))
    grid.add_row("state", state_cell(status.state))
    grid.add_row("task", Text(visible(status.task_name)))
    grid.add_row("queue", Text(visible(status.queue)))
    grid.add_row("attempts", str(status.attempts))
    for label, moment in (
        ("enqueued", status.enqueued_at),
        ("started", status.started_at),
        ("finished", status.finished_at),
    ):
        if moment is not None:
            grid.add_row(label, when(moment))
    if status.worker is not None:
        grid.add_row("worker", Text(visible(status.worker)))
    if status.progress is not None:
        grid.add_row("progress", Text(visible(progress_text(status), multiline=True)))
    if status.error_type is not None or status.error_message is not None:
        error = f"{status.error_type or 'error'}: {status.error_message or ''}"
        grid.add_row("error", Text(visible(error, multiline=True), style="red"))
    if status.cancel_requested:
        grid.add_row("cancel", "requested")
    return grid


def _latest(status: TaskStatus) -> str:
    """The last time something happened to the task, and what."""
    for label, moment in (
        ("finished", status.finished_at),
        ("started", status.started_at),
        ("enqueued", status.enqueued_at),
    ):
        if moment is not None:
            return f"{label} {when(moment)}"
    return ""


def tasks_table(rows: Sequence[TaskStatus], title: str) -> Table:
    """Tracked tasks: id, state and attempts, task and queue, progress, last change, error.

    Six columns that fold or wrap, so a narrow terminal squeezes each a little instead of
    cutting some off.
    """
    table = Table(title=literal(title), title_justify="left")
    table.add_column("task id", style="bold", overflow="fold", min_width=8)
    table.add_column("state", no_wrap=True)
    table.add_column("task", overflow="fold", min_width=8)
    table.add_column("progress", overflow="fold", min_width=4)
    table.add_column("last change", min_width=10)
    table.add_column("error", style="red", overflow="fold", min_width=10)
    for s in rows:
        state = state_cell(s.state)
        state.append(f"\nattempts {s.attempts}", style="dim")
        task = Text(visible(s.task_name))
        task.append(f"\nqueue {visible(s.queue)}", style="dim")
        table.add_row(
            Text(visible(s.task_id)),
            state,
            task,
            Text(visible(_first_line(progress_text(s), 30))),
            _latest(s),
            Text(visible(_first_line(error_text(s)))),
        )
    return table


@dataclass(frozen=True, slots=True)
class Cancelled:
    """What ``asynctasq cancel`` did to one id, and the task's state after it."""

    task_id: str
    outcome: CancelOutcome
    status: TaskStatus | None

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "task_id": self.task_id,
            "outcome": str(self.outcome),
            "state": None if self.status is None else str(self.status.state),
        }

    def sentence(self) -> str:
        """One line for a person."""
        state = None if self.status is None else self.status.state
        if self.outcome == CancelOutcome.ALREADY_FINISHED:
            return f"already finished ({state or 'finished'}): nothing changed"
        if state == TaskState.CANCELLED:
            return "cancelled: it will not run"
        if state == TaskState.RUNNING and self.status is not None:
            worker = f" by worker {self.status.worker}" if self.status.worker else ""
            return f"cancel requested: it is running and is being stopped{worker}"
        return (
            "cancel requested (no status record: the task is not tracked or the id is "
            "unknown): a worker skips it, or stops it if it is running"
        )


async def _status(connection: ConnectionOptions, task_id: str) -> TaskStatus | None:
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        return await needing(driver, StatusStore, asynctasq.status(task_id, driver=driver))


async def _tasks(
    connection: ConnectionOptions, queue: str | None, state: TaskState | None, limit: int
) -> tuple[str, list[TaskStatus]]:
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        found = await needing(
            driver,
            StatusStore,
            asynctasq.list_tasks(queue=queue, state=state, limit=limit, driver=driver),
        )
    return session.describe_driver(loaded), found


NOT_A_TASK_ID = "not a task id (task ids are UUIDs, as dispatch() returns)"


async def _cancel(connection: ConnectionOptions, task_ids: Sequence[str]) -> list[Cancelled]:
    canonical: list[str] = []
    bad: list[str] = []
    for given in task_ids:
        try:
            canonical.append(canonical_task_id(given))
        except ValueError:
            bad.append(given)
    if bad:  # nothing is cancelled: a typo must not pass for a cancelled task
        shown = ", ".join(visible(t[:80]) for t in bad[:5])
        raise CliError(
            f"{NOT_A_TASK_ID}: {shown}"
            f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}; nothing was cancelled",
            exit_code=2,
        )
    loaded = load_config(connection)
    done: list[Cancelled] = []
    async with session.open_driver(loaded) as driver:
        for task_id in dict.fromkeys(canonical):
            outcome = await needing(driver, EventLog, asynctasq.cancel(task_id, driver=driver))
            after = (
                await asynctasq.status(task_id, driver=driver)
                if isinstance(driver, StatusStore)
                else None
            )
            done.append(Cancelled(task_id, outcome, after))
    return done


def register(app: typer.Typer) -> None:
    """Add ``status``, ``tasks`` and ``cancel`` to `app`."""

    @app.command(rich_help_panel="Inspect")
    @takes_connection
    def status(
        task_id: Annotated[
            str, typer.Argument(help="The id dispatch() returned.", show_default=False)
        ],
        as_json: JsonOption = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Show where a tracked task is: state, attempts, times, worker, progress, error.

        Only tasks dispatched with track=True (or with task_defaults.track on) have a
        status. An unknown id exits with code 1.
        """
        with reporting_errors():
            try:
                task_id = canonical_task_id(task_id)
            except ValueError:
                raise CliError(
                    f"{NOT_A_TASK_ID}: {visible(task_id[:80])}",
                    exit_code=2,
                ) from None
            found = run(_status(connection, task_id))
            if found is None:
                raise CliError(f"no status for task {task_id!r}: {NOT_FOUND_HINT}")
            if as_json:
                print_json(found.as_dict())
            else:
                stdout().print(status_view(found))

    @app.command(rich_help_panel="Inspect")
    @takes_connection
    def tasks(
        queue: Annotated[
            str | None,
            typer.Option("--queue", "-q", help="Only this queue.", show_default=False),
        ] = None,
        state: Annotated[
            TaskState | None,
            typer.Option("--state", help="Only tasks in this state.", show_default=False),
        ] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most to show.")] = 50,
        as_json: JsonOption = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """List tracked tasks, most recently changed first.

        Example: asynctasq tasks --state running --queue emails
        """
        with reporting_errors():
            described, found = run(_tasks(connection, queue, state, limit))
            if as_json:
                print_json([s.as_dict() for s in found])
                return
            which = "Tracked tasks" + (f" {state}" if state else "")
            where = f" in {queue!r}" if queue else ""
            if not found:
                stdout().print(literal(f"No {which.lower()}{where} on {described}."))
                return
            stdout().print(tasks_table(found, f"{which}{where} on {described}"))
            if len(found) == limit:
                stdout().print(f"(first {limit}; --limit shows more)", style="dim")

    @app.command(rich_help_panel="Manage")
    @takes_connection
    def cancel(
        task_ids: Annotated[
            list[str],
            typer.Argument(metavar="TASK_ID...", help="Task ids.", show_default=False),
        ],
        as_json: JsonOption = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Cancel tasks: a queued or delayed one never runs, a running one is stopped.

        An async task is cancelled at its next await and a process task's child is
        stopped; a task running in a thread cannot be killed, it sees
        current_task().cancel_requested turn true. Says per id what happened.
        """
        with reporting_errors():
            done = run(_cancel(connection, task_ids))
            if as_json:
                print_json([c.as_dict() for c in done])
                return
            console = stdout()
            for c in done:
                console.print(literal(f"{c.task_id}: {c.sentence()}"))


__all__ = [
    "Cancelled",
    "error_text",
    "percent",
    "progress_text",
    "register",
    "status_view",
    "tasks_table",
    "when",
]
