"""Text from messages, errors and settings is shown literally: never markup, never raw
control sequences (anyone who can write to the broker writes these strings)."""

from __future__ import annotations

import asyncio
import io
import unicodedata
import uuid
from pathlib import Path

import cli_test_tasks as t
import orjson
import pytest
from cli_testing import Invoke, enqueue
from rich.console import Console

from asynctasq.drivers.base import Driver, Failure, OutgoingMessage
from asynctasq.testing import MemoryDriver
from asynctasq_cli.output import literal, print_error, visible
from asynctasq_cli.status import Banner

HOSTILE = "bad input [/] [bold]x \x1b]0;owned\x07\x1b[2J\rgone\x00 \u202eevil \x9b31m"
"""Markup that does not balance, an OSC title change, clear-screen, CR, NUL, a bidi override
and an 8-bit CSI."""

RAW_CONTROLS = ("\x1b", "\x00", "\r", "\x07", "\u202e", "\x9b")


def assert_no_raw_controls(text: str) -> None:
    for char in RAW_CONTROLS:
        assert char not in text, f"{char!r} written raw"


def dead_letter(driver: Driver, queue: str, failure: Failure, payload: bytes | None = None) -> str:
    """Queue one message on `queue` and dead-letter it with `failure`; its id."""
    task_id = str(uuid.uuid4())

    async def go() -> None:
        await driver.connect()
        try:
            body = payload if payload is not None else b"{}"
            await driver.enqueue(OutgoingMessage(task_id, queue, body))
            [delivery] = await driver.dequeue([queue], limit=1, wait=0)
            await driver.dead_letter(delivery, failure)
        finally:
            await driver.close()

    asyncio.run(go())
    return task_id


def hostile_payload(task_id: str) -> bytes:
    doc = {
        "v": 1,
        "id": task_id,
        "task": "evil[/]\x1b[2J:x",
        "at": 0,
        "o": [1, 0, "fixed", 0, False, None, 60],
        "args": [HOSTILE],
        "kwargs": {"[/]": "\x9b2J"},
    }
    return orjson.dumps(doc)


def test_dead_letters_with_markup_and_control_sequences_list_and_show(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str]
) -> None:
    plain = dead_letter(memory, "emails", Failure("builtins.ValueError", "bad input [/]", "tb"))
    hostile = dead_letter(
        memory,
        "emails",
        Failure("evil[/]\x1b[31m.Error", HOSTILE, f"Traceback:\n  {HOSTILE}\nValueError: [/]"),
        hostile_payload("x"),
    )
    listed = cli("dead-letters", "list", *memory_args)
    assert listed.exit_code == 0, listed.output
    assert "ValueError: bad input [/]" in listed.stdout
    assert plain in listed.stdout and hostile in listed.stdout
    assert "\\x1b" in listed.stdout
    assert_no_raw_controls(listed.output)

    shown = cli("dead-letters", "show", plain, *memory_args)
    assert shown.exit_code == 0, shown.output
    assert "builtins.ValueError: bad input [/]" in shown.stdout

    shown = cli("dead-letters", "show", hostile, *memory_args)
    assert shown.exit_code == 0, shown.output
    assert "bad input [/] [bold]x \\x1b]0;owned\\x07" in shown.stdout
    assert "ValueError: [/]" in shown.stdout  # the traceback keeps its lines
    assert "\\u202e" in shown.stdout and "\\x9b" in shown.stdout
    assert_no_raw_controls(shown.output)


def test_dead_letters_list_with_a_markup_queue_filter(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str]
) -> None:
    dead_letter(memory, "[/]", Failure("builtins.ValueError", "x", "tb"))
    listed = cli("dead-letters", "list", *memory_args, "--queue", "[/]")
    assert listed.exit_code == 0, listed.output
    assert "Dead letters in '[/]'" in listed.stdout
    empty = cli("dead-letters", "list", *memory_args, "--queue", "[bold]")
    assert empty.exit_code == 0, empty.output
    assert "No dead letters in '[bold]'" in empty.stdout


def test_markup_queue_names_show_in_queues_and_purge(
    cli: Invoke, memory: MemoryDriver, memory_args: list[str], markers: Path
) -> None:
    enqueue(memory, [t.record(str(markers), "x").on_queue("[/]") for _ in range(2)])
    enqueue(memory, [t.record(str(markers), "x").on_queue("[red]q")])
    result = cli("queues", *memory_args)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "[/]" in line)
    # ready, delayed, in flight, dead, expired (the memory driver keeps claims, so it counts)
    counts = [c for c in row.replace("│", " ").split() if c.isdigit()]
    assert counts == ["2", "0", "0", "0", "0"]
    assert "[red]q" in result.stdout
    purged = cli("purge", "[/]", "--yes", *memory_args)
    assert purged.exit_code == 0, purged.output
    assert "Purged 2 message(s) from '[/]'" in purged.stdout


def test_doctor_shows_settings_literally(cli: Invoke, namespace: str) -> None:
    name = f"{namespace}[/]"
    result = cli("doctor", "--driver", "memory", "--set", f"memory.namespace={name}")
    assert f"'{name}'" in result.stdout, result.output
    assert "No problems found" in result.stdout


def test_banner_shows_names_literally() -> None:
    banner = Banner(
        version="1.0[/]",
        driver="memory (namespace=[/])",
        embedded_default=False,
        queues=("[/]", "[bold]"),
        concurrency=1,
        shutdown_timeout=1.0,
        burst=True,
        imports=("a[/]",),
        allowed_roots=("/srv/[/]\x1b[2J",),
        event_loop="asyncio",
    )
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    banner.render(console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "[/], [bold]" in out and "namespace=[/]" in out and "/srv/[/]\\x1b[2J" in out
    assert_no_raw_controls(out)


def test_errors_on_stderr_carry_no_raw_controls(capsys: pytest.CaptureFixture[str]) -> None:
    print_error(f"cannot connect: {HOSTILE}")
    err = capsys.readouterr().err
    assert err.startswith("error: cannot connect: bad input [/]")
    assert err.endswith("\n") and err.count("\n") == 1
    assert_no_raw_controls(err)


def test_visible_escapes_every_control_and_format_character() -> None:
    hidden = [
        chr(c)
        for c in range(0x110000)
        if unicodedata.category(chr(c)) in {"Cc", "Cf", "Cs", "Zl", "Zp"} and chr(c) != "\t"
    ]
    text = "".join(hidden)
    shown = visible(text)
    assert shown.isascii() and shown.isprintable()
    assert shown == "".join(repr(c)[1:-1] for c in hidden)
    assert visible("a\tb") == "a\tb"
    assert visible("a\nb") == "a\\nb"
    assert visible("a\r\nb", multiline=True) == "a\\r\nb"
    assert visible("plain text, ünïcode ✓") == "plain text, ünïcode ✓"
    assert visible(42) == "42"


def test_literal_text_is_never_parsed_as_markup() -> None:
    console = Console(file=io.StringIO(), width=200, force_terminal=True, highlight=False)
    for text in ("[/]", "[bold]x[/bold]", "\\[/]", "a\\", "[link=http://x]y", HOSTILE):
        console.print(f"[red]{literal(text)}[/]")
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "[/]" in out and "[bold]x[/bold]" in out and "[link=http://x]y" in out
    assert "\x1b]0;owned" not in out and "\x00" not in out
