"""Where the CLI writes, and how it reports errors: one line on stderr, a non-zero exit code.

Exit codes: 0 success, 1 an operation failed (unreachable broker, failed import, ...),
2 a usage or configuration error (bad option value, unknown driver or setting).
A traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from asynctasq.errors import AsyncTasQError, ConfigError
from asynctasq_cli.clicktypes import ClickException
from asynctasq_cli.redact import redact_text

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """An error to show as one line, with the exit code to leave with.

    Args:
        message: What went wrong and, where known, the fix.
        exit_code: The process exit code (default 1).
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _State:
    """Process-wide flags set by the root command."""

    debug: bool = False


state = _State()


PIPE_WIDTH = 200
"""Line width when output is not a terminal (and COLUMNS is unset): tables are not squeezed."""


def stdout() -> Console:
    """A console on standard output (built per call: tests swap the streams)."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def stderr() -> Console:
    """A console on standard error: banners, progress, live status, logs."""
    return Console(stderr=True, highlight=False)


_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Control, format (bidi overrides, zero-width), surrogate and line/paragraph separators."""


def visible(text: object, *, multiline: bool = False) -> str:
    """`text` with its control characters written as escapes (``\\x1b``, ``\\x00``, ``\\u202e``).

    Error messages, queue names and payloads come from whoever can write to the broker: an
    escape sequence in them must not reach the terminal, where it could move the cursor,
    rewrite earlier lines or change the window title. Tabs are kept, and newlines with
    `multiline` (tracebacks).
    """
    value = text if isinstance(text, str) else str(text)
    if value.isprintable():  # the common case, checked at C speed
        return value
    table: dict[int, str] = {}
    # Distinct characters only: a multi-megabyte traceback costs one pass in C, not one
    # Python call per character.
    for char in set(value):
        if char == "\t" or (multiline and char == "\n"):
            continue
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            table[ord(char)] = repr(char)[1:-1]
    return value.translate(table) if table else value


def literal(text: object, *, multiline: bool = False) -> str:
    """`text` for a Rich markup string (table cells, titles, ``console.print`` f-strings).

    Square brackets are escaped, so ``[/]`` in an error message is shown, not parsed as a
    tag, and control characters are made `visible`.
    """
    return escape(visible(text, multiline=multiline))


def one_line(exc: BaseException) -> str:
    """`exc` as one line: its type when the message is empty, the first line otherwise."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    if not text:
        return type(exc).__name__
    first = text.splitlines()[0].strip()
    return redact_text(first)


def describe(exc: BaseException) -> str:
    """A one-line description of an unexpected exception, naming its type."""
    if isinstance(exc, CliError | AsyncTasQError):
        return one_line(exc)
    return f"{type(exc).__name__}: {one_line(exc)}"


def print_error(message: str) -> None:
    """Write ``error: message`` as one line on stderr."""
    sys.stderr.write(f"error: {visible(message)}\n")
    sys.stderr.flush()


def print_warning(message: str) -> None:
    """Write ``warning: message`` as one line on stderr."""
    sys.stderr.write(f"warning: {visible(message)}\n")
    sys.stderr.flush()


def exit_code_for(exc: BaseException) -> int:
    """2 for configuration mistakes, the error's own code for `CliError`, else 1."""
    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    return EXIT_FAILURE


@contextmanager
def reporting_errors(report: Callable[[str], None] = print_error) -> Iterator[None]:
    """Turn any exception raised inside into one line (`report`: on stderr) and `typer.Exit`.

    With ``--debug`` the exception propagates with its traceback.

    Raises:
        typer.Exit: with the error's exit code.
    """
    try:
        yield
    except (ClickException, typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if state.debug:
            raise
        report(describe(exc))
        raise typer.Exit(exit_code_for(exc)) from None


def interactive() -> bool:
    """Whether someone can answer a question (standard input is a terminal)."""
    return sys.stdin.isatty()


def confirm(question: str, refusal: str) -> None:
    """Ask `question` on a terminal; elsewhere refuse with `refusal` (confirm with --yes).

    Raises:
        CliError: not interactive (exit code 2).
        typer.Abort: the answer was no.
    """
    if not interactive():
        raise CliError(refusal, exit_code=EXIT_USAGE)
    typer.confirm(question, abort=True, err=True)


def print_json(data: Any) -> None:
    """Write `data` as JSON on stdout (no wrapping, no colour: for scripts)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


__all__ = [
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "CliError",
    "confirm",
    "describe",
    "exit_code_for",
    "interactive",
    "literal",
    "one_line",
    "print_error",
    "print_json",
    "print_warning",
    "reporting_errors",
    "state",
    "stderr",
    "stdout",
    "visible",
]
