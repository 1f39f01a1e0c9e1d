"""The task model: class-based tasks (`asynctasq.core.task`) and `@task` functions."""
