"""The worker runtime."""

from asynctasq.worker.job import Job
from asynctasq.worker.worker import Worker, WorkerStats

__all__ = ["Job", "Worker", "WorkerStats"]
