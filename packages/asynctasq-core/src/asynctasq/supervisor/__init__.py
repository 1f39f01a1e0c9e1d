"""Several worker processes from one command: `Supervisor` (``asynctasq worker --workers N``).

See `asynctasq.supervisor.supervisor` for what the supervisor does on a death, a crash loop
and a stop, and `asynctasq.supervisor.sizing` for how each process's pool is sized.
"""

from asynctasq.supervisor.restarts import RestartPolicy
from asynctasq.supervisor.sizing import (
    CHILD_VARIABLE,
    CHILDREN_VARIABLE,
    child_number,
    cpu_count,
    fills_the_cpus,
    parse_workers,
    process_pool_share,
    supervised_pool_size,
)
from asynctasq.supervisor.supervisor import (
    EXIT_CRASH_LOOP,
    EXIT_FORCED_BASE,
    EXIT_OK,
    EXIT_UNCLEAN,
    Supervisor,
    Target,
    describe_exit,
)

__all__ = [
    "CHILDREN_VARIABLE",
    "CHILD_VARIABLE",
    "EXIT_CRASH_LOOP",
    "EXIT_FORCED_BASE",
    "EXIT_OK",
    "EXIT_UNCLEAN",
    "RestartPolicy",
    "Supervisor",
    "Target",
    "child_number",
    "cpu_count",
    "describe_exit",
    "fills_the_cpus",
    "parse_workers",
    "process_pool_share",
    "supervised_pool_size",
]
