"""Workflows: `chain`, `group` and `chord`, built on the results store and atomic claims.

``chain(a(1), b, c.step(2))`` runs ``a(1)``, then ``b(<a's result>)``, then
``c(<b's result>, 2)``; ``group([...])`` runs tasks at once and gathers their results in
order; ``chord(group, callback)`` runs the callback with the list of the group's results.
Dispatching one returns a `WorkflowHandle` (``result``, ``status``, ``cancel``).

How it is built, and why
------------------------
*Passing results.* A step that takes the previous result is a `Step`: a task function call
without its first positional argument (``b.step(...)``, or a bare ``b``). A full task call
in a chain runs after the previous step and ignores its result (Celery's immutable
signature): a class task, which has no positional arguments, is always such a call. Every
step is encoded at dispatch, so a bad argument fails before anything is queued; the worker
that finishes a step puts its result (in the serializer's wire form, never decoded by that
worker) first in the next step's arguments.

*State.* The plan (every step's encoded message) is stored once in the results store;
each step's message carries only a short header naming its workflow, its index and a
token. Step task ids are deterministic (``<workflow id>.<index>``), and every step's result
is kept (``keep_result`` at least the workflow's ttl), so a handle is read from the results
and claims alone, from any process (`workflow`).

*Who queues the next step.* The worker that finished a step queues what follows *before*
it acknowledges the step (`asynctasq.workflows.runner.advance`). A worker that dies in
between leaves the step unacknowledged: its lease expires, it runs again (at least once,
like any task) and asks for the next step again. Asking twice queues it once: each step has
a claim (compare and replace, `ClaimStore`) that a queueing takes with a fresh token and the
worker that starts it swaps to ``run:<token>``; a step already started is not queued again,
and of two queued copies only the one whose token still holds the claim runs (the other is
acknowledged unrun). See `asynctasq.workflows.queueing`.

*Chords.* Each member marks itself done in a bitmap held by one claim (compare and replace:
marking twice changes nothing); the member that completes the bitmap gathers the results
and queues the callback, through the same once-only queueing.

*Failure and cancellation.* A step that fails for good is dead-lettered like any task; its
message carries the workflow header, its traceback a note naming the workflow and the step,
and nothing after it is queued (only success advances). ``handle.result()`` raises
`StepFailedError` (a `TaskFailedError`) naming the step. Retrying that dead letter (within
the ttl) resumes the workflow. ``handle.cancel()`` marks every step not started as
cancelled (it will never be queued, and a queued copy is dropped unrun) and cancels started
ones with `asynctasq.cancel`.

*Cost.* Workers look for the header only on messages that carry headers; a worker running
no workflow step pays one emptiness check per task.

*Drivers.* Those with a results store and claims (Redis, PostgreSQL, MySQL, SQLite, the
in-memory driver); dispatching on another (SQS, RabbitMQ) raises `TypeError` naming them.
"""

from asynctasq.workflows.canvas import Chain, Chord, Group, Link, Workflow, chain, chord, group
from asynctasq.workflows.handle import (
    StepFailedError,
    StepState,
    StepStatus,
    WorkflowCancelledError,
    WorkflowHandle,
    WorkflowState,
    WorkflowStatus,
    workflow,
)
from asynctasq.workflows.queueing import WorkflowStore
from asynctasq.workflows.steps import Step

__all__ = [
    "Chain",
    "Chord",
    "Group",
    "Link",
    "Step",
    "StepFailedError",
    "StepState",
    "StepStatus",
    "Workflow",
    "WorkflowCancelledError",
    "WorkflowHandle",
    "WorkflowState",
    "WorkflowStatus",
    "WorkflowStore",
    "chain",
    "chord",
    "group",
    "workflow",
]
