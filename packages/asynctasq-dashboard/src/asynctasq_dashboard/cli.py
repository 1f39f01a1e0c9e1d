"""``asynctasq dashboard``: serve the dashboard with uvicorn (the ``asynctasq.cli`` entry
point ``dashboard``).

It takes the connection options of every command (``--driver``, ``--set``, ``-o``,
``--env-file``) and, like ``asynctasq schedules``, imports the task modules named by
``--import`` so the schedules page lists what they declare. It listens on 127.0.0.1 unless
told otherwise, and refuses any other address without a token or basic auth, which are read
from the environment or a file (never from the command line, where ``ps`` would show them).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from asynctasq.drivers.base import Driver
from asynctasq.errors import ConfigError
from asynctasq.runner import run
from asynctasq_cli import session
from asynctasq_cli.code_options import allowed_roots_option, imports_option
from asynctasq_cli.commands.schedules import list_schedules
from asynctasq_cli.output import one_line, print_warning, reporting_errors
from asynctasq_cli.settings import (
    ConnectionOptions,
    LoadedConfig,
    cli_setting,
    takes_connection,
)
from asynctasq_dashboard.app import create_app
from asynctasq_dashboard.auth import Auth, BasicAuth, TokenAuth, check_bind

TOKEN_VARIABLE = "DASHBOARD_TOKEN"
BASIC_AUTH_VARIABLE = "DASHBOARD_BASIC_AUTH"
CONNECT_TIMEOUT = 10.0

_app = typer.Typer(name="dashboard", add_completion=False)


def read_auth(token_file: Path | None, env_file: Path | None) -> Auth | None:
    """The credentials to require, from ``--token-file``, ``ASYNCTASQ_DASHBOARD_TOKEN`` or
    ``ASYNCTASQ_DASHBOARD_BASIC_AUTH`` (environment, then ``.env``).

    Raises:
        ConfigError: both a token and basic auth are set, the file cannot be read, or a
            secret is too weak.
    """
    token = cli_setting(TOKEN_VARIABLE, None, env_file, "")
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {str(token_file)!r}: {exc.strerror}") from None
    basic = cli_setting(BASIC_AUTH_VARIABLE, None, env_file, "")
    if token and basic:
        raise ConfigError(
            "both a dashboard token and basic auth are set: keep one "
            "(ASYNCTASQ_DASHBOARD_TOKEN / --token-file, or ASYNCTASQ_DASHBOARD_BASIC_AUTH)"
        )
    if token:
        return TokenAuth(token)
    if basic:
        return BasicAuth.parse(basic)
    return None


async def _check_broker(driver: Driver, loaded: LoadedConfig) -> None:
    # The dashboard starts even when the broker is down (its pages say so and recover);
    # this only tells the operator at once.
    try:
        await session.connect(driver, loaded, CONNECT_TIMEOUT)
    except Exception as exc:
        print_warning(f"{one_line(exc)} (the dashboard starts anyway and keeps trying)")


async def _serve(server: uvicorn.Server, driver: Driver, loaded: LoadedConfig) -> None:
    await _check_broker(driver, loaded)
    try:
        await server.serve()
    finally:
        with contextlib.suppress(Exception):
            await driver.close()


@_app.command()
@takes_connection
def dashboard(
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port.")] = 8080,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Anything but loopback needs a token or basic auth.",
        ),
    ] = "127.0.0.1",
    imports: Annotated[
        list[str] | None,
        imports_option(
            "Task module declaring schedules (repeatable), as for asynctasq worker. "
            "(env: ASYNCTASQ_WORKER_IMPORTS, comma-separated)"
        ),
    ] = None,
    allowed_roots: Annotated[
        list[str] | None,
        allowed_roots_option(
            "Directory task code may be imported from (repeatable). "
            "(default: the working directory)"
        ),
    ] = None,
    refresh: Annotated[
        float,
        typer.Option("--refresh", min=0.2, help="Seconds between reads of the broker."),
    ] = 2.0,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="File holding the access token. "
            "(env: ASYNCTASQ_DASHBOARD_TOKEN; or ASYNCTASQ_DASHBOARD_BASIC_AUTH=user:password)",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    *,
    connection: ConnectionOptions,
) -> None:
    """Serve the live web dashboard: queues, tasks, dead letters, schedules, workers.

    Example: asynctasq dashboard --port 8080 --driver redis
    """
    with reporting_errors():
        auth = read_auth(token_file, connection.env_file)
        check_bind(host, auth)
        loaded, _ = list_schedules(
            connection,
            tuple(imports) if imports else None,
            tuple(allowed_roots) if allowed_roots else None,
        )
        described = session.describe_driver(loaded)
        the_driver = session.create(loaded)
        app = create_app(the_driver, auth=auth, title=described, refresh=refresh)
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", server_header=False
        )
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        print(
            f"asynctasq dashboard on http://{shown}:{port}/ watching {described}"
            f"{' (auth required)' if auth else ''}; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        run(_serve(server, the_driver, loaded))


command = typer.main.get_command(_app)
"""The click command the ``asynctasq.cli`` entry point mounts as ``dashboard``."""

__all__ = ["command", "dashboard", "read_auth"]
