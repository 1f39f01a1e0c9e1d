"""The ``asynctasq`` command: built-in commands plus those driver packages add."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from asynctasq_cli import plugins
from asynctasq_cli.clicktypes import ClickException, Command, Context, UsageError
from asynctasq_cli.commands import (
    dead_letters,
    doctor,
    events,
    migrate,
    queues,
    schedules,
    tasks,
    top,
    worker,
    workers,
)
from asynctasq_cli.output import (
    EXIT_FAILURE,
    describe,
    exit_code_for,
    print_error,
    state,
)
from asynctasq_cli.versions import cli_version, core_version


class AsyncTasQGroup(TyperGroup):
    """The root group: mounts plugin commands lazily and reports errors as one line."""

    def list_commands(self, ctx: Context) -> list[str]:
        """Built-in commands, then installed plugins (built-ins win a name clash)."""
        own = super().list_commands(ctx)
        return [*own, *(n for n in plugins.plugin_names() if n not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """A built-in command, or the plugin mounted under `cmd_name` (loaded on first use)."""
        return super().get_command(ctx, cmd_name) or plugins.command_for(cmd_name)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; every error ends as one line on stderr and an exit code."""
        state.debug = False  # set by the root callback (--debug / ASYNCTASQ_DEBUG)
        args = _debug_first(list(sys.argv[1:] if args is None else args))
        try:
            rv = super().main(
                args, prog_name or "asynctasq", complete_var, standalone_mode=False, **extra
            )
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # help was asked for by omission
                typer.echo(exc.format_message(), err=True)
            else:
                print_error(_usage_message(exc))
            code = exc.exit_code
        except typer.Abort:
            print_error("aborted")
            code = EXIT_FAILURE
        except Exception as exc:
            if state.debug:
                raise
            print_error(describe(exc))
            code = exit_code_for(exc)
        else:
            code = rv if isinstance(rv, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


def _debug_first(args: list[str]) -> list[str]:
    """`--debug` is a root option; people type it after the command too
    (``asynctasq worker --debug``), so move it in front (never past a ``--``)."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[1:end]:
        return args
    i = args.index("--debug")
    return ["--debug", *args[:i], *args[i + 1 :]]


def _usage_message(exc: ClickException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, UsageError) and ctx is not None:
        return f"{message} (see: {ctx.command_path} --help)"
    return message


app = typer.Typer(
    name="asynctasq",
    cls=AsyncTasQGroup,
    help="AsyncTasQ: run workers; inspect queues, tasks, workers and events; check the set-up.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"asynctasq-cli {cli_version()} (asynctasq-core {core_version()})")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="ASYNCTASQ_DEBUG",
            help="Show tracebacks of errors.",
            show_default=False,
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_show_version,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
) -> None:
    """AsyncTasQ: run workers; inspect queues, tasks, workers and events; check the set-up."""
    state.debug = debug


worker.register(app)
queues.register(app)
tasks.register(app)
workers.register(app)
top.register(app)
schedules.register(app)
events.register(app)
dead_letters.register(app)
doctor.register(app)
migrate.register(app)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: ``asynctasq ...``."""
    command = typer.main.get_command(app)
    code = command.main(args=argv, prog_name="asynctasq", standalone_mode=False)
    worker.exit_process(code if isinstance(code, int) else 0)


__all__ = ["AsyncTasQGroup", "app", "main"]
