"""Every code block of the documentation runs, so no example can rot.

* ```python blocks are written to a file and run as a script (``python example.py``), each
  in its own temporary directory, all in parallel, with ``ASYNCTASQ_DRIVER=memory`` (one
  shared in-memory namespace per example) unless the block configures a driver itself.
* A block that needs a server says so on the line before it:
  ``<!-- requires: redis -->`` (or ``postgres``, ``mysql``, ``rabbitmq``); each gets its own
  key prefix, schema, tables or queue prefix through the environment and is cleaned up
  after. A Redis block's loopback URL (``redis://127.0.0.1:6379/N``, as the docs show it) is
  replaced by the test server's (``ASYNCTASQ_TEST_REDIS_URL``), and its keys live under its
  own prefix: nothing shared is flushed. Unreachable servers skip the block, or fail it when
  ``CI`` is set. ``<!-- requires: import:module -->`` skips a block when an optional package
  is missing (fails under ``CI``: every package is installed there).
* ```bash blocks: every ``asynctasq ...`` command must name real commands and options
  (checked against the typer app) and ``asynctasq <command> --help`` must succeed; ``make``
  targets must exist in the Makefile; ``python -m`` modules must exist; ``pip install
  asynctasq-*`` must name our packages.
* The generated reference sections (CLI, configuration) render and cover every command and
  setting.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow  # its examples take a minute or more together

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TIMEOUT = 60.0
PARALLEL = 4
REQUIRES = re.compile(r"^<!--\s*requires:\s*(.+?)\s*-->$")
SERVERS = {
    "redis": ("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "postgres": ("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": ("ASYNCTASQ_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test"),
    "rabbitmq": ("ASYNCTASQ_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
}
DEFAULT_PORTS = {"redis": 6379, "postgresql": 5432, "mysql": 3306, "amqp": 5672}
DOCS_REDIS_URL = re.compile(r"redis://127\.0\.0\.1:6379(/\d+)?")
"""How the docs' examples name the local Redis; the tests point them at the test server."""


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block of the docs."""

    path: Path
    line: int
    lang: str
    code: str
    requires: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(DOCS)}:{self.line}"


def blocks(lang: str) -> list[Block]:
    """The fenced blocks of language `lang` in docs/**/*.md, in file order."""
    found: list[Block] = []
    for path in sorted(DOCS.rglob("*.md")):
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            fence = re.match(r"^(\s*)```(\w*)", lines[i])
            if not fence:
                i += 1
                continue
            indent, start = len(fence.group(1)), i
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            if fence.group(2) == lang:
                before = [line.strip() for line in lines[:start] if line.strip()]
                marker = REQUIRES.match(before[-1]) if before else None
                needs = tuple(r.strip() for r in marker.group(1).split(",")) if marker else ()
                code = "\n".join(line[indent:] for line in lines[start + 1 : j]) + "\n"
                found.append(Block(path, start + 1, lang, code, needs))
            i = j + 1
    return found


# -- servers --------------------------------------------------------------------------------


def server_url(name: str) -> str:
    env, default = SERVERS[name]
    return os.environ.get(env, default)


def reachable(name: str) -> bool:
    parts = urlsplit(server_url(name))
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Isolation:
    """Environment that keeps one example's broker state apart, and how to remove it."""

    env: dict[str, str] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def isolate(requirement: str, iso: Isolation) -> None:
    tag = uuid.uuid4().hex[:10]
    if requirement == "redis":
        prefix = f"docs-{tag}"
        iso.env["ASYNCTASQ_REDIS_URL"] = server_url("redis")
        iso.env["ASYNCTASQ_REDIS_PREFIX"] = prefix
        iso.cleanups.append(lambda: asyncio.run(_clean_redis(prefix)))
    elif requirement == "postgres":
        schema = f"docs_{tag}"
        iso.env["ASYNCTASQ_POSTGRES_SCHEMA"] = schema
        iso.cleanups.append(lambda: asyncio.run(_clean_postgres(schema)))
    elif requirement == "mysql":
        # Every table of this example starts with docs_<tag>_ (the queue and dead-letter
        # tables and those derived from the queue table: migrations, results, statuses, ...).
        iso.env["ASYNCTASQ_MYSQL_QUEUE_TABLE"] = f"docs_{tag}_q"
        iso.env["ASYNCTASQ_MYSQL_DEAD_LETTER_TABLE"] = f"docs_{tag}_d"
        iso.cleanups.append(lambda: asyncio.run(_clean_mysql(f"docs_{tag}_")))
    elif requirement == "rabbitmq":
        names = {"exchange_name": f"docs-{tag}", "queue_prefix": f"docs-{tag}-"}
        iso.env["ASYNCTASQ_RABBITMQ_EXCHANGE_NAME"] = names["exchange_name"]
        iso.env["ASYNCTASQ_RABBITMQ_QUEUE_PREFIX"] = names["queue_prefix"]
        iso.cleanups.append(lambda: asyncio.run(_clean_rabbitmq(names)))


async def _clean_redis(prefix: str) -> None:
    from redis.asyncio import Redis

    r = Redis.from_url(server_url("redis"))
    try:
        keys = [k async for k in r.scan_iter(match=f"*{prefix}*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


async def _clean_postgres(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_url("postgres"))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _clean_mysql(prefix: str) -> None:
    import aiomysql

    from asynctasq_mysql import parse_dsn

    conn = await aiomysql.connect(**parse_dsn(server_url("mysql")).connect_kwargs())
    try:
        async with conn.cursor() as cur:
            like = prefix.replace("_", "\\_") + "%"
            await cur.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name LIKE %s",
                (like,),
            )
            for (table,) in await cur.fetchall():
                await cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    finally:
        conn.close()


async def _clean_rabbitmq(names: dict[str, str]) -> None:
    from asynctasq_rabbitmq import RabbitMQDriver

    driver = RabbitMQDriver(url=server_url("rabbitmq"), **names)
    try:
        await driver.delete_topology()
    finally:
        await driver.close()


# -- running python blocks --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    skipped: str | None = None
    returncode: int = 0
    output: str = ""


def _skip_reason(block: Block) -> str | None:
    for need in block.requires:
        if need.startswith("import:"):
            module = need.removeprefix("import:")
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        elif need not in SERVERS:
            return f"unknown requirement {need!r} (known: {', '.join(SERVERS)}, import:MODULE)"
        elif not reachable(need):
            return f"{need} unreachable at {server_url(need)}"
    return None


def run_block(block: Block) -> Outcome:
    reason = _skip_reason(block)
    if reason is not None:
        return Outcome(skipped=reason)
    iso = Isolation()
    for need in block.requires:
        isolate(need, iso)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ASYNCTASQ_") or key.startswith("ASYNCTASQ_TEST_")
    }
    env.update(
        ASYNCTASQ_DRIVER="memory",
        ASYNCTASQ_MEMORY_NAMESPACE="docs",
        PYTHONUNBUFFERED="1",
        COLUMNS="100",
        **iso.env,
    )
    code = block.code
    if "redis" in block.requires:
        code = DOCS_REDIS_URL.sub(lambda _: server_url("redis"), code)
    with tempfile.TemporaryDirectory(prefix="docs-example-") as tmp:
        script = Path(tmp) / "example.py"
        script.write_text(code)
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the example and its process pool: one group to kill
        )
        try:
            output, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            output += f"\n(killed after {TIMEOUT:.0f} s)"
        finally:
            for cleanup in iso.cleanups:
                try:
                    cleanup()
                except Exception as exc:  # cleanup problems must not hide the result
                    output += f"\n(cleanup failed: {exc!r})"
    return Outcome(returncode=proc.returncode, output=output)


PYTHON_BLOCKS = blocks("python")
BASH_BLOCKS = blocks("bash")


@pytest.fixture(scope="module")
def python_outcomes() -> dict[str, Outcome]:
    """Every python block, run in parallel once for the module."""
    # The slowest first (servers, process pools, ORMs), so they do not finish last.
    order = sorted(PYTHON_BLOCKS, key=lambda b: not (b.requires or "process" in b.code))
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = pool.map(run_block, order)
        return {block.id: outcome for block, outcome in zip(order, results, strict=True)}


def test_docs_have_examples() -> None:
    assert len(PYTHON_BLOCKS) >= 20 and len(BASH_BLOCKS) >= 10


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_example_runs(block: Block, python_outcomes: dict[str, Outcome]) -> None:
    outcome = python_outcomes[block.id]
    if outcome.skipped is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{outcome.skipped} (CI is set: servers and packages must be there)")
        pytest.skip(outcome.skipped)
    assert outcome.returncode == 0, f"{block.id} failed:\n{outcome.output[-4000:]}"


# -- bash blocks ------------------------------------------------------------------------------


def commands(block: Block) -> Iterator[list[str]]:
    """The shell commands of a block, as argument lists (continuations joined)."""
    text = block.code.replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while words and ("=" in words[0] or words[0] == "export"):
            words = words[1:]  # `export A=1 B=2 cmd` / `A=1 cmd`: the command follows
        if words:
            yield words


def _cli_root() -> object:
    import typer

    from asynctasq_cli.app import app

    return typer.main.get_command(app)


def resolve_cli(words: list[str]) -> tuple[list[str], list[str]]:
    """(command path, problems) for ``asynctasq ...`` words, checked against the app."""
    from asynctasq_cli.clicktypes import Context

    command = _cli_root()
    ctx = Context(command, info_name="asynctasq")  # type: ignore[arg-type]
    path: list[str] = []
    problems: list[str] = []
    options: set[str] = set()

    def collect(cmd: object) -> None:
        for param in getattr(cmd, "params", []):
            options.update(getattr(param, "opts", []))
            options.update(getattr(param, "secondary_opts", []))

    collect(command)
    for word in words[1:]:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name not in options | {"--help", "-h"}:
                problems.append(f"unknown option {name} for asynctasq {' '.join(path)}")
            continue
        if hasattr(command, "get_command"):
            sub = command.get_command(ctx, word)
            if sub is None:
                problems.append(f"unknown command {word!r} after asynctasq {' '.join(path)}")
                break
            path.append(word)
            ctx = Context(sub, info_name=word, parent=ctx)
            command = sub
            options = set()
            collect(command)
    return path, problems


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", text, re.MULTILINE))


@pytest.mark.parametrize("block", BASH_BLOCKS, ids=lambda b: b.id)
def test_bash_example_names_real_commands(block: Block) -> None:
    problems: list[str] = []
    packages = {p.name for p in (ROOT / "packages").iterdir() if p.is_dir()}
    for words in commands(block):
        if words[0].endswith("asynctasq"):
            problems += resolve_cli(words)[1]
        elif words[0] == "make":
            problems += [f"no make target {t!r}" for t in words[1:] if t not in _makefile_targets()]
        elif words[0].endswith("python") and words[1:2] == ["-m"]:
            if importlib.util.find_spec(words[2]) is None:
                problems.append(f"no module {words[2]!r}")
        elif words[:2] == ["pip", "install"]:
            names = [re.split(r"[\[<>=]", w)[0] for w in words[2:] if not w.startswith("-")]
            problems += [
                f"no package {n!r} in packages/"
                for n in names
                if n.startswith("asynctasq") and n not in packages
            ]
    assert not problems, f"{block.id}: " + "; ".join(problems)


def test_cli_commands_in_docs_have_help() -> None:
    """``asynctasq <command> --help`` succeeds for every command path the docs use."""
    from typer.testing import CliRunner

    from asynctasq_cli.app import app

    paths = {
        tuple(resolve_cli(words)[0])
        for block in BASH_BLOCKS
        for words in commands(block)
        if words[0].endswith("asynctasq")
    }
    runner = CliRunner()
    failures = []
    for path in sorted(paths):
        result = runner.invoke(app, [*path, "--help"])
        if result.exit_code != 0 or "Usage" not in result.output:
            failures.append((path, result.exit_code, result.output[-500:]))
    assert len(paths) >= 5
    assert not failures, failures


# -- generated reference ----------------------------------------------------------------------


def test_cli_reference_covers_every_command() -> None:
    from scripts.docs.cli_reference import command_paths, render

    text = render()
    paths = command_paths()
    assert ("asynctasq", "worker") in paths and ("asynctasq", "dead-letters", "retry") in paths
    for path in paths:
        assert f"`{' '.join(path)}`" in text


def test_configuration_reference_describes_every_setting() -> None:
    from scripts.docs import config_reference as ref

    sections = ref.core_sections()
    for section, extra in ref.EXTRA_DESCRIPTIONS.items():
        fields = {s.name for s in sections[section]}
        assert set(extra) <= fields, f"stale EXTRA_DESCRIPTIONS for {section}"
    undocumented = [
        f"{s.section}.{s.name}"
        for group in [*sections.values(), *(v[1] for v in ref.driver_sections().values())]
        for s in group
        if not s.description
    ]
    assert not undocumented, f"settings without a description: {undocumented}"
    text = ref.render()
    assert "ASYNCTASQ_TASK_DEFAULTS_MAX_ATTEMPTS" in text and "ASYNCTASQ_WORKER_QUEUES" in text


def test_every_generated_section_in_docs_expands() -> None:
    from scripts.docs.hooks import expand

    for path in DOCS.rglob("*.md"):
        text = path.read_text()
        if "<!-- generated:" in text:
            fresh = expand(text)  # every named section renders (an unknown name raises)
            starts = fresh.count("<!-- generated:")
            assert starts == fresh.count("<!-- end generated -->"), path
            assert expand(fresh) == fresh, path
