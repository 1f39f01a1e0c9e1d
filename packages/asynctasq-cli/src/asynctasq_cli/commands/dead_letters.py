"""``asynctasq dead-letters list|show|retry|purge``: tasks that failed for good."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from asynctasq.core import envelope
from asynctasq.drivers.base import DeadLetter
from asynctasq.lifecycle import control
from asynctasq.runner import run
from asynctasq_cli import bulk, session
from asynctasq_cli.output import (
    CliError,
    confirm,
    literal,
    print_error,
    print_json,
    reporting_errors,
    stderr,
    stdout,
    visible,
)
from asynctasq_cli.settings import (
    ConnectionOptions,
    load_config,
    takes_connection,
)

dead_letters_app = typer.Typer(
    name="dead-letters",
    help="List, show, retry and purge dead letters (tasks that failed for good).",
    no_args_is_help=True,
)

QueueOption = Annotated[
    str | None,
    typer.Option("--queue", "-q", help="Only this queue.", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
IdsArgument = Annotated[
    list[str] | None,
    typer.Argument(metavar="[TASK_ID]...", help="Task ids.", show_default=False),
]
AllOption = Annotated[
    bool, typer.Option("--all", help="Every dead letter (of --queue when given).")
]


def task_name(letter: DeadLetter) -> str:
    """The task a dead letter's message names, or ``<malformed>``."""
    try:
        return envelope.decode(letter.payload).task
    except Exception:
        return "<malformed message>"


def as_dict(letter: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    """A dead letter as JSON-ready data; with `full`, its arguments and traceback too."""
    doc: dict[str, Any] = {
        "task_id": letter.task_id,
        "queue": letter.queue,
        "task": task_name(letter),
        "attempts": letter.attempts,
        "failed_at": letter.failed_at.isoformat(),
        "error": {"type": letter.failure.exception_type, "message": letter.failure.message},
    }
    if full:
        doc["error"]["traceback"] = letter.failure.traceback
        try:
            env = envelope.decode(letter.payload)
        except Exception as exc:
            doc["payload"] = letter.payload.decode("utf-8", "replace")
            doc["payload_error"] = str(exc)
        else:
            doc["dispatched_at"] = (
                datetime.fromtimestamp(env.dispatched_at).astimezone().isoformat()
                if env.dispatched_at
                else None
            )
            doc["max_attempts"] = env.max_attempts
            if env.attrs is not None:
                doc["attributes"] = env.attrs
            else:
                doc["args"], doc["kwargs"] = env.args, env.kwargs
    return doc


def _short(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def letters_table(letters: list[DeadLetter], title: str) -> Table:
    """Dead letters as a table: id, queue, task, attempts, failed at, error.

    `title` is plain text; every cell is shown literally (dead letters are written by
    whoever can write to the broker, so nothing in them is read as markup).
    """
    table = Table(title=literal(title), title_justify="left")
    table.add_column("task id", no_wrap=True, style="bold")
    table.add_column("queue")
    table.add_column("task")
    table.add_column("attempts", justify="right")
    table.add_column("failed at", no_wrap=True)
    table.add_column("error", style="red")
    for d in letters:
        error = f"{d.failure.exception_type.rsplit('.', 1)[-1]}: {_short(d.failure.message)}"
        table.add_row(
            literal(d.task_id),
            literal(d.queue),
            literal(task_name(d)),
            str(d.attempts),
            d.failed_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            literal(error),
        )
    return table


def letter_panel(letter: DeadLetter) -> Panel:
    """One dead letter in full: what ran, with which arguments, and how it failed."""
    doc = as_dict(letter, full=True)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan")
    grid.add_column()
    for key in ("task", "queue", "attempts", "failed_at", "dispatched_at", "max_attempts"):
        if doc.get(key) is not None:
            grid.add_row(key.replace("_", " "), literal(doc[key]))
    error = f"{letter.failure.exception_type}: {letter.failure.message}"
    grid.add_row("error", Text(visible(error, multiline=True), style="red"))
    arguments = {k: doc[k] for k in ("args", "kwargs", "attributes", "payload") if k in doc}
    # orjson escapes C0 controls inside strings but writes C1 controls (U+009B is CSI on
    # some terminals) and bidi overrides as they are.
    arguments_json = orjson.dumps(arguments, option=orjson.OPT_INDENT_2).decode()
    body = Syntax(visible(arguments_json, multiline=True), "json", word_wrap=True)
    trace = Text(visible(letter.failure.traceback.rstrip(), multiline=True), style="dim")
    return Panel(
        Group(
            grid,
            Text("\narguments", style="bold cyan"),
            body,
            Text("\ntraceback", style="bold cyan"),
            trace,
        ),
        title=f"dead letter {literal(letter.task_id)}",
        title_align="left",
    )


def selection_from(ids: list[str] | None, queue: str | None, everything: bool) -> bulk.Selection:
    """Check that exactly one way of choosing was used.

    Raises:
        CliError: nothing chosen, or ids together with --all.
    """
    if ids and everything:
        raise CliError("give task ids or --all, not both", exit_code=2)
    if not ids and not queue and not everything:
        raise CliError("say which dead letters: task ids, --queue QUEUE or --all", exit_code=2)
    return bulk.Selection(task_ids=tuple(ids or ()), queue=queue, everything=everything)


async def _list(
    connection: ConnectionOptions, queue: str | None, limit: int
) -> tuple[str, list[DeadLetter]]:
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        return session.describe_driver(loaded), await driver.list_dead_letters(
            queue=queue, limit=limit
        )


async def _show(connection: ConnectionOptions, task_id: str) -> DeadLetter | None:
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        found = await driver.list_dead_letters(task_ids=[task_id], limit=1)
    return found[0] if found else None


async def _bulk(
    connection: ConnectionOptions, selection: bulk.Selection, verb: str
) -> tuple[int, list[str]]:
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        operation = (
            functools.partial(control.retry_dead_letters, driver)  # statuses read queued again
            if verb == "retry"
            else driver.purge_dead_letters
        )
        label = "Retrying" if verb == "retry" else "Purging"
        return await bulk.apply_with_progress(
            driver, operation, selection, verb=label, console=stderr()
        )


def _report(done: int, missing: list[str], selection: bulk.Selection, past: str) -> None:
    stdout().print(literal(f"{past} {done:,} dead letter(s) {selection.describe()}."))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        print_error(f"{len(missing)} task id(s) are not dead letters: {shown}")
        raise typer.Exit(1)


@dead_letters_app.command("list")
@takes_connection
def list_(
    queue: QueueOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most to show.")] = 50,
    as_json: JsonOption = False,
    *,
    connection: ConnectionOptions,
) -> None:
    """List dead letters, oldest first."""
    with reporting_errors():
        described, letters = run(_list(connection, queue, limit))
        if as_json:
            print_json([as_dict(d) for d in letters])
            return
        where = f" in {queue!r}" if queue else ""
        if not letters:
            stdout().print(literal(f"No dead letters{where} on {described}."))
            return
        stdout().print(letters_table(letters, f"Dead letters{where} on {described}"))
        if len(letters) == limit:
            stdout().print(f"(first {limit}; --limit shows more)", style="dim")


@dead_letters_app.command()
@takes_connection
def show(
    task_id: Annotated[str, typer.Argument(help="The task id.", show_default=False)],
    as_json: JsonOption = False,
    *,
    connection: ConnectionOptions,
) -> None:
    """Show one dead letter: its task, arguments, error and traceback."""
    with reporting_errors():
        letter = run(_show(connection, task_id))
        if letter is None:
            raise CliError(f"no dead letter with task id {task_id!r}")
        if as_json:
            print_json(as_dict(letter, full=True))
        else:
            stdout().print(letter_panel(letter))


@dead_letters_app.command()
@takes_connection
def retry(
    task_ids: IdsArgument = None,
    queue: QueueOption = None,
    everything: AllOption = False,
    *,
    connection: ConnectionOptions,
) -> None:
    """Put dead letters back on their queues, ready now with fresh attempts.

    Choose by task ids, by --queue, or --all.
    """
    with reporting_errors():
        selection = selection_from(task_ids, queue, everything)
        done, missing = run(_bulk(connection, selection, "retry"))
        _report(done, missing, selection, "Retried")


@dead_letters_app.command()
@takes_connection
def purge(
    task_ids: IdsArgument = None,
    queue: QueueOption = None,
    everything: AllOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    *,
    connection: ConnectionOptions,
) -> None:
    """Delete dead letters for good.

    Choose by task ids, by --queue, or --all.
    """
    with reporting_errors():
        selection = selection_from(task_ids, queue, everything)
        if not yes:
            confirm(
                f"Delete the dead letters {selection.describe()}?",
                "purging deletes dead letters for good: confirm with --yes",
            )
        done, missing = run(_bulk(connection, selection, "purge"))
        _report(done, missing, selection, "Purged")


def register(app: typer.Typer) -> None:
    """Add ``dead-letters`` to `app`."""
    app.add_typer(dead_letters_app, name="dead-letters", rich_help_panel="Manage")


__all__ = ["as_dict", "letter_panel", "letters_table", "register", "selection_from"]
