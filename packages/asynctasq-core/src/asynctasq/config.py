"""Process-wide configuration: `init()`, `set_global_config()`, `get_config()`.

Sources, weakest first: defaults < `.env` < `ASYNCTASQ_*` environment < the mapping or keywords
given in code. Settings are grouped in sections: `task_defaults`, `worker`, `events`, and
one section per driver named after it (`redis`, `postgres`, ...) whose keys are that driver's
constructor keywords. Every spelling reaches the same place::

    init({"driver": "redis", "redis": {"url": "redis://h:6379"}})
    set_global_config(driver="redis", redis_url="redis://h:6379")
    ASYNCTASQ_DRIVER=redis ASYNCTASQ_REDIS_URL=redis://h:6379

An unknown key is an error that names it. In the environment and `.env`, an unknown key of a
known section is an error too; an ``ASYNCTASQ_*`` variable naming no section is only a
`ConfigWarning`, and only when it looks like a misspelt setting (``ASYNCTASQ_WORKERS_...``):
the prefix is shared with test suites, benchmarks and deployment scripts, whose variables
are none of this module's business (see `stray_variables`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from asynctasq.drivers.registry import FIRST_PARTY_DRIVERS, driver_class, driver_settings
from asynctasq.errors import ConfigError, UnknownDriverError

ENV_PREFIX = "ASYNCTASQ_"
RetryStrategy = Literal["fixed", "exponential"]

RESERVED_ENV_PREFIXES = ("ASYNCTASQ_TEST_", "ASYNCTASQ_BENCH_")
"""Variables for test suites and benchmarks: never configuration, never warned about."""

TOOL_VARIABLES = frozenset(
    {
        "ASYNCTASQ_DEBUG",
        "ASYNCTASQ_LOG_LEVEL",
        "ASYNCTASQ_LOG_FORMAT",
        "ASYNCTASQ_WORKERS",  # asynctasq worker --workers
        "ASYNCTASQ_SUPERVISOR_CHILD",  # set by the supervisor in each worker process
        "ASYNCTASQ_SUPERVISOR_CHILDREN",
    }
)
"""Variables the asynctasq command reads itself (not sections of this configuration)."""


class ConfigWarning(UserWarning):
    """An ``ASYNCTASQ_*`` variable that looks like a setting but that nothing reads."""


def _check_queue_setting(where: str, value: str) -> None:
    # Imported at call time: asynctasq.core.options imports this module.
    from asynctasq.core.options import check_queue

    try:
        check_queue(value, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class TaskDefaults:
    """What a task gets when neither its decorator, class nor chain sets a value."""

    queue: str = "default"
    max_attempts: int = 3
    retry_strategy: RetryStrategy = "exponential"
    retry_delay: float = 60.0
    retry_max_delay: float = 3600.0
    retry_jitter: bool = True
    timeout: float | None = None
    visibility_timeout: float = 3600.0
    track: bool = False
    """Keep a status record of every task (``track=True`` on each)."""
    track_ttl: float = 86400.0
    """Seconds a tracked task's status is kept after it finished."""

    def __post_init__(self) -> None:
        # Imported at call time: asynctasq.core.options imports this module.
        from asynctasq.core.options import check_option

        # The same checks as a task's own settings: a default is used where no task sets the
        # value, so a bad one would otherwise surface only at dispatch, or in the broker.
        for setting in dataclasses.fields(self):
            name = setting.name
            if name == "track_ttl":
                continue
            try:
                value = check_option(name, getattr(self, name))
            except ValueError as exc:
                raise ConfigError(f"task_defaults.{exc}") from None
            # Kept as checked (max_attempts=3.0 is 3): the defaults go on the wire as they are.
            object.__setattr__(self, name, value)
        if not self.track_ttl > 0:
            raise ConfigError(f"task_defaults.track_ttl must be > 0, got {self.track_ttl!r}")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How `asynctasq worker` (and `Worker()` without arguments) runs."""

    queues: tuple[str, ...] = ("default",)
    concurrency: int = 10
    process_pool_size: int | None = None
    process_max_tasks_per_child: int | None = None
    thread_pool_size: int | None = None
    shutdown_timeout: float = 30.0
    poll_wait: float = 1.0
    allowed_roots: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    log_tasks: bool = False
    """Log a line per task started and finished, with its duration (logger
    ``asynctasq.tasks``, at INFO)."""
    health_file: str | None = None
    """A file the worker rewrites every few seconds while its event loop runs (for exec
    probes); removed when it stops. See `asynctasq.worker.health`."""
    metrics_port: int | None = None
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on this port (`asynctasq worker`,
    with the ``asynctasq-prometheus`` package installed)."""
    metrics_host: str = "127.0.0.1"
    """The address the metrics server binds (``0.0.0.0`` to be scraped from other hosts)."""
    metrics_interval: float = 15.0
    """Seconds between two samples of the queue depths for the metrics."""
    prefetch: int = 0
    """Messages a worker takes beyond its free slots, started as slots free up, so the next
    batch is on hand when short tasks finish (more throughput per process). 0 takes only
    what it can start at once, which shares long tasks fairly between workers."""
    heartbeat_interval: float = 5.0
    """Seconds between a worker's heartbeats; it disappears from `asynctasq workers` three
    intervals after its last one."""
    schedules: bool = False
    """Run the scheduler beside the worker (``asynctasq worker --schedules``)."""

    def __post_init__(self) -> None:
        if not self.heartbeat_interval > 0:
            raise ConfigError(
                f"worker.heartbeat_interval must be greater than 0, got {self.heartbeat_interval!r}"
            )
        if not isinstance(self.prefetch, int) or self.prefetch < 0:
            raise ConfigError(f"worker.prefetch must be 0 or more, got {self.prefetch!r}")
        at_least_one = (
            "concurrency",
            "process_pool_size",
            "process_max_tasks_per_child",
            "thread_pool_size",
        )
        for name in at_least_one:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"worker.{name} must be at least 1, got {value!r}")
        if self.poll_wait <= 0:
            raise ConfigError(f"worker.poll_wait must be greater than 0, got {self.poll_wait!r}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(
                f"worker.metrics_port must be a port number (0 to 65535), got {self.metrics_port!r}"
            )
        if not 1 <= self.metrics_interval <= 3600:
            raise ConfigError(
                f"worker.metrics_interval must be 1 to 3600 seconds, got {self.metrics_interval!r}"
            )
        if not self.queues:
            raise ConfigError("worker.queues must name at least one queue")
        for queue in self.queues:
            _check_queue_setting("worker.queues", queue)


@dataclass(frozen=True, slots=True)
class EventSettings:
    """The event stream (`asynctasq.events`): off unless enabled."""

    enabled: bool = False
    """Workers publish task and worker events; dispatching processes ``task-enqueued``."""
    retention: float = 3600.0
    """Seconds events are kept for late subscribers."""

    def __post_init__(self) -> None:
        if not self.retention > 0:
            raise ConfigError(f"events.retention must be > 0, got {self.retention!r}")


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """How workers run schedules (`asynctasq.schedule`, ``@task(schedule=...)``)."""

    grace: float = 60.0
    """Seconds after its time a tick may still fire when no scheduler was running then
    (missed ticks older than this are skipped)."""

    def __post_init__(self) -> None:
        if not 0 <= self.grace <= 86400:
            raise ConfigError(f"schedules.grace must be 0 to 86400 seconds, got {self.grace!r}")


@dataclass(frozen=True, slots=True)
class Config:
    """The configuration in effect. Build it with `init()`/`set_global_config()`."""

    driver: str | None = None
    task_defaults: TaskDefaults = field(default_factory=TaskDefaults)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    events: EventSettings = field(default_factory=EventSettings)
    schedules: ScheduleSettings = field(default_factory=ScheduleSettings)
    drivers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    version: int = 0

    def driver_settings(self, name: str) -> dict[str, Any]:
        """The settings section of driver `name` (empty when none were given)."""
        return dict(self.drivers.get(name, {}))


_SECTIONS: dict[str, type[Any]] = {
    "task_defaults": TaskDefaults,
    "worker": WorkerSettings,
    "events": EventSettings,
    "schedules": ScheduleSettings,
}
_config: Config | None = None  # None: not configured yet; the environment decides on first use
_version = 0


# -- value conversion -----------------------------------------------------------------------
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _to_union(where: str, value: Any, args: tuple[Any, ...]) -> Any:
    empty = value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))
    if empty and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(where, value, arg)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")


def _to_literal(where: str, value: Any, args: tuple[Any, ...]) -> Any:
    if value in args:
        return value
    raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")


def _to_sequence(where: str, value: Any, kind: type[Any]) -> Any:
    if isinstance(value, str):
        items: list[Any] = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
    return kind(str(i) for i in items)


def _to_bool(where: str, value: Any, kind: type[Any]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{where}: expected true/false, got {value!r}")


def parse_bool(value: str, where: str) -> bool:
    """`value` as a setting's true/false word (true/1/yes/on, false/0/no/off, any case).

    Raises:
        ConfigError: anything else, named with `where`.
    """
    return _to_bool(where, value, bool)


def _to_number(where: str, value: Any, kind: type[Any]) -> Any:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{where}: must be finite, got {value!r}")
    if isinstance(value, float) and kind is int and value != int(value):
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    return number


def _to_str(where: str, value: Any, kind: type[Any]) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    return value


_CONVERTERS: dict[Any, Callable[[str, Any, type[Any]], Any]] = {
    tuple: _to_sequence,
    list: _to_sequence,
    bool: _to_bool,
    int: _to_number,
    float: _to_number,
    str: _to_str,
}
"""How a value (often an environment string) becomes each plain type a setting declares."""


def _convert(where: str, value: Any, annotation: Any) -> Any:
    """Coerce `value` (often an environment string) to `annotation`, or raise ConfigError.

    Types without a converter (a driver's own classes, ``Any``) pass the value through: the
    driver's constructor checks it.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _to_union(where, value, typing.get_args(annotation))
    if origin is Literal:
        return _to_literal(where, value, typing.get_args(annotation))
    kind = origin or annotation
    converter = _CONVERTERS.get(kind)
    return value if converter is None else converter(where, value, kind)


def _section_fields(name: str) -> dict[str, Any]:
    """Field name -> annotation for a section, or raise for an unknown section."""
    if name in _SECTIONS:
        cls = _SECTIONS[name]
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    cls = driver_class(name)
    params = driver_settings(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: fall back to no conversion
        hints = {}
    return {n: hints.get(n, p.annotation) for n, p in params.items()}


def _known_sections() -> list[str]:
    from asynctasq.drivers.registry import installed_drivers

    return sorted({*_SECTIONS, *installed_drivers(), *FIRST_PARTY_DRIVERS})


def _sentinels(name: str) -> Mapping[str, tuple[float, ...]]:
    """The negative values driver `name` documents as special (``pool_recycle=-1``: never).

    A driver declares them in a class attribute ``setting_sentinels``; every other negative
    number is refused here, whatever the driver.
    """
    if name in _SECTIONS:
        return {}
    declared = getattr(driver_class(name), "setting_sentinels", None)
    return declared if isinstance(declared, Mapping) else {}


def _validate_section(name: str, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    try:
        fields_ = _section_fields(name)
    except UnknownDriverError as exc:
        raise ConfigError(f"{source}: settings for driver {name!r} given, but {exc}") from None
    sentinels = _sentinels(name)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields_:
            raise ConfigError(
                f"{source}: unknown setting {name}.{key}; "
                f"{name} accepts: {', '.join(sorted(fields_))}"
            )
        out[key] = _check_number(
            f"{source}: {name}.{key}",
            _convert(f"{source}: {name}.{key}", value, fields_[key]),
            sentinels.get(key, ()),
        )
    return out


def _check_number(where: str, value: Any, sentinels: tuple[float, ...] = ()) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
        if value < 0 and value not in sentinels:
            if sentinels:
                allowed = " or ".join(f"{s:g}" for s in sentinels)
                raise ConfigError(f"{where}: must be 0 or more, or {allowed}, got {value!r}")
            raise ConfigError(f"{where}: must not be negative, got {value!r}")
    return value


# -- parsing of the three spellings ---------------------------------------------------------
def _split_flat(key: str, sections: list[str]) -> tuple[str, str] | None:
    """'redis_max_connections' -> ('redis', 'max_connections'); longest section wins."""
    for section in sorted(sections, key=len, reverse=True):
        if key.startswith(section + "_") and len(key) > len(section) + 1:
            return section, key[len(section) + 1 :]
    return None


def _parse(settings: Mapping[str, Any], source: str) -> dict[str, dict[str, Any] | Any]:
    """Normalise a user mapping into {'driver': ..., section: {key: value}}."""
    sections = _known_sections()
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "driver":
            if value is not None and not isinstance(value, str):
                from asynctasq.drivers.base import Driver

                if isinstance(value, Driver):
                    raise ConfigError(
                        f"{source}: 'driver' takes a driver name; pass driver instances to "
                        "@task(driver=...) or Worker(driver=...)"
                    )
                raise ConfigError(f"{source}: 'driver' must be a name, got {value!r}")
            out["driver"] = value
        elif key in sections:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {key!r} must be a mapping of settings")
            out.setdefault(key, {}).update(value)
        else:
            split = _split_flat(key, sections)
            if split is None:
                raise ConfigError(
                    f"{source}: unknown setting {key!r}; known: driver, "
                    + ", ".join(sections)
                    + " (as sections or flat, e.g. redis_url)"
                )
            out.setdefault(split[0], {})[split[1]] = value
    return out


@dataclass(frozen=True, slots=True)
class StrayVariable:
    """An ``ASYNCTASQ_*`` variable that names no section of the configuration.

    Attributes:
        name: The variable.
        source: ``environment`` or the path of the `.env` file.
        suggestion: The variable it was probably meant to be, when it looks like a misspelt
            setting (then `init()` warns about it); None for what looks like another tool's.
    """

    name: str
    source: str
    suggestion: str | None

    def message(self) -> str:
        """One line naming the variable and what it probably meant."""
        return (
            f"{self.source}: {self.name} is not an AsyncTasQ setting and is ignored; "
            f"did you mean {self.suggestion}?"
        )


def _is_ours(name: str) -> bool:
    """Whether `name` is reserved for AsyncTasQ's tools or tests (not configuration)."""
    return name in TOOL_VARIABLES or name.startswith(RESERVED_ENV_PREFIXES)


def _suggest(key: str, sections: list[str]) -> str | None:
    """What an unknown ``ASYNCTASQ_<KEY>`` probably meant, or None if it is not like ours.

    Three mistakes are recognised: a misspelt ``driver`` (``drivers``), a misspelt section
    (``workers_concurrency``, ``task_default_queue``, ``postgresql_dsn``) and a setting of
    ``worker`` or ``task_defaults`` without its section (``concurrency``).
    """
    if difflib.get_close_matches(key, ["driver"], n=1, cutoff=0.8):  # DRIVERS, DRIVR
        return f"{ENV_PREFIX}DRIVER"
    parts = key.split("_")
    for cut in range(1, len(parts)):
        head, rest = "_".join(parts[:cut]), "_".join(parts[cut:])
        close = difflib.get_close_matches(head, sections, n=1, cutoff=0.8)
        if close:
            return f"{ENV_PREFIX}{close[0]}_{rest}".upper()
    for section in _SECTIONS:
        if key in _section_fields(section):
            return f"{ENV_PREFIX}{section}_{key}".upper()
    return None


def _from_environ(environ: Mapping[str, str], source: str = "environment") -> dict[str, Any]:
    sections = _known_sections()
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key == "driver":
            out["driver"] = value or None
            continue
        split = _split_flat(key, sections)
        if split is None:
            stray = _stray(name, source, sections)
            if stray is not None and stray.suggestion is not None:
                _warn_at_caller(stray.message())
            continue
        out.setdefault(split[0], {})[split[1]] = value
    return out


def _stray(name: str, source: str, sections: list[str]) -> StrayVariable | None:
    if _is_ours(name):
        return None
    return StrayVariable(name, source, _suggest(name[len(ENV_PREFIX) :].lower(), sections))


def stray_variables(
    dotenv: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> list[StrayVariable]:
    """The ``ASYNCTASQ_*`` variables of `.env` and the environment that nothing reads.

    Reserved names (``ASYNCTASQ_TEST_*``, ``ASYNCTASQ_BENCH_*``, the CLI's own variables) are
    not listed. Those with a `suggestion` look like misspelt settings; the others are
    probably another tool's.

    Args:
        dotenv: Path of the `.env` file (default: `.env` in the working directory).
        environ: The environment (default: `os.environ`).
    """
    sections = _known_sections()
    path = Path(dotenv) if dotenv is not None else Path.cwd() / ".env"
    found: list[StrayVariable] = []
    layers = (
        (str(path), read_dotenv(path)),
        ("environment", os.environ if environ is None else environ),
    )
    for source, variables in layers:
        for name in sorted(variables):
            if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}DRIVER":
                continue
            if _split_flat(name[len(ENV_PREFIX) :].lower(), sections) is not None:
                continue
            stray = _stray(name, source, sections)
            if stray is not None:
                found.append(stray)
    return found


def read_dotenv(path: str | Path | None = None) -> dict[str, str]:
    """The variables of a ``.env`` file (default: ``.env`` in the working directory); empty
    when there is none."""
    path = Path(path) if path is not None else Path.cwd() / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def merge_settings(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """Merge settings `layer` into `base` (in place, and returned): sections key by key,
    other values replaced. How every source is layered over the weaker ones."""
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key].update(value)
        elif isinstance(value, Mapping):
            base[key] = dict(value)
        else:
            base[key] = value
    return base


_pinned: list[tuple[str, dict[str, Any]]] = []
"""Settings that win over whatever `init` or `set_global_config` is given while they are
pinned (see `pin`)."""


@contextmanager
def pin(settings: Mapping[str, Any], source: str) -> Iterator[None]:
    """Inside the block, `settings` win over every configuration built (``init()``,
    ``set_global_config()``): a test's in-memory queues stay in effect when the application
    under test configures itself at start-up. `source` names them in error messages.

    For `asynctasq.testing.memory_queues`, which also sets the configuration on entry and
    restores it on exit; process-wide, like the configuration itself.
    """
    layer = (source, _parse(settings, source))
    _pinned.append(layer)
    try:
        yield
    finally:
        _pinned.remove(layer)


def _build(
    layers: list[tuple[str, Mapping[str, Any]]], environment: frozenset[str] = frozenset()
) -> Config:
    global _version
    layers = [*layers, *_pinned]
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merge_settings(merged, layer)
    sources = {k: src for src, layer in layers for k in layer}
    driver = merged.pop("driver", None)
    values: dict[str, Any] = {}
    drivers: dict[str, dict[str, Any]] = {}
    for section, section_values in merged.items():
        checked = _validate_section(section, section_values, sources.get(section, "config"))
        if section in _SECTIONS:
            try:
                values[section] = _SECTIONS[section](**checked)
            except ConfigError as exc:
                raise ConfigError(f"{sources.get(section, 'config')}: {exc}") from None
        else:
            drivers[section] = checked
    if driver is not None:
        # An unknown driver name is reported now, where the mistake was made.
        driver_class(driver)
    else:
        _warn_unchosen(drivers, sources, environment)
    _version += 1
    return Config(driver=driver, drivers=drivers, version=_version, **values)


NO_DRIVER_CHOSEN = "but no driver is chosen"
"""In the warning about a broker's settings without a driver: a command that imports task
modules (which may choose one in code) holds that warning until they are imported."""

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # not asynctasq_cli/


def _warn_at_caller(message: str) -> None:
    """A `ConfigWarning` pointing at the first frame outside this package (the user's
    ``init()`` or first dispatch), not at the line here that found the problem."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(message, ConfigWarning, stacklevel=level)


def _warn_unchosen(
    drivers: Mapping[str, Any], sources: Mapping[str, str], environment: frozenset[str]
) -> None:
    """Settings of one broker's driver in the environment (or `.env`) without a driver
    chosen: the tasks would go to the embedded default while a worker waits on that broker,
    with nothing said. Settings given in code are left alone: code may name the driver
    where it is used (``@task(driver="redis")``, `build_driver`)."""
    from asynctasq.drivers.connections import EMBEDDED_DEFAULT

    named = sorted(name for name in drivers if name != EMBEDDED_DEFAULT)
    if len(named) != 1 or sources.get(named[0]) not in environment:
        return  # none, several on purpose (one chosen per process elsewhere), or in code
    name = named[0]
    _warn_at_caller(
        f"{sources[name]}: {name} settings are given {NO_DRIVER_CHOSEN}, "
        f"so the embedded {EMBEDDED_DEFAULT} driver is used; set {ENV_PREFIX}DRIVER={name} "
        f"(or init({{'driver': '{name}'}}))"
    )


def _environment_layers(dotenv: str | Path | None) -> list[tuple[str, Mapping[str, Any]]]:
    path = Path(dotenv) if dotenv is not None else Path.cwd() / ".env"
    return [
        (f"{path}", _from_environ(read_dotenv(path), f"{path}")),
        ("environment", _from_environ(os.environ)),
    ]


def init(
    settings: Mapping[str, Any] | None = None,
    *,
    dotenv: str | Path | None = None,
    source: str = "init()",
) -> Config:
    """Set the process-wide configuration.

    Args:
        settings: Settings as a mapping (sections or flat keys). Values given here win over
            the environment, which wins over `.env`, which wins over the defaults.
        dotenv: Path of the `.env` file (default: `.env` in the working directory).
        source: How error messages name `settings` (e.g. "command line").

    Returns:
        The configuration now in effect.

    Raises:
        ConfigError: an unknown key or an unusable value, named in the message.
    """
    global _config
    layers = _environment_layers(dotenv)
    environment = frozenset(name for name, _ in layers)
    if settings is not None:
        layers.append((source, _parse(settings, source)))
    _config = _build(layers, environment)
    return _config


def set_global_config(**settings: Any) -> Config:
    """Update the process-wide configuration with keyword settings.

    Keys are merged into the configuration in effect (`driver='redis'`,
    `redis_url='redis://...'`, `task_defaults={'queue': 'q'}`, ...).

    Raises:
        ConfigError: an unknown key or an unusable value, named in the message.
    """
    global _config
    current = _as_layer(get_config())
    _config = _build(
        [("config", current), ("set_global_config()", _parse(settings, "set_global_config()"))]
    )
    return _config


def _as_layer(config: Config) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    if config.driver is not None:
        layer["driver"] = config.driver
    for section in _SECTIONS:
        obj = getattr(config, section)
        default = _SECTIONS[section]()
        changed = {
            f.name: getattr(obj, f.name)
            for f in dataclasses.fields(obj)
            if getattr(obj, f.name) != getattr(default, f.name)
        }
        if changed:
            layer[section] = changed
    for name, values in config.drivers.items():
        layer[name] = dict(values)
    return layer


def get_config() -> Config:
    """The configuration in effect.

    Until `init()` or `set_global_config()` is called, the first use reads the environment
    and `.env`, as `init()` would: a process configured only by ``ASYNCTASQ_*`` variables
    needs no code.
    """
    if _config is None:
        return init()
    return _config


def use_config(config: Config | None) -> None:
    """Make an already-built configuration the one in effect (a worker's process-pool children
    receive their parent's this way, instead of reading the environment again); None puts the
    process back to "not configured yet" (tests restoring what `configured()` returned)."""
    global _config
    _config = config


def configured() -> Config | None:
    """The configuration in effect, or None while nothing has configured the process yet (the
    first `get_config()` then reads the environment). With `use_config`, lets a test or tool
    change the configuration for a while and put back exactly what was there."""
    return _config


def reset_config() -> None:
    """Back to the defaults, ignoring the environment (for tests)."""
    global _config
    _config = Config()


__all__ = [
    "RESERVED_ENV_PREFIXES",
    "TOOL_VARIABLES",
    "Config",
    "ConfigWarning",
    "RetryStrategy",
    "ScheduleSettings",
    "StrayVariable",
    "TaskDefaults",
    "WorkerSettings",
    "configured",
    "get_config",
    "init",
    "merge_settings",
    "parse_bool",
    "read_dotenv",
    "reset_config",
    "set_global_config",
    "stray_variables",
    "use_config",
]
