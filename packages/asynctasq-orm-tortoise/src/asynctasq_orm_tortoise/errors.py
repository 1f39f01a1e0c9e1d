"""Exceptions raised while turning a model reference back into a model instance."""

from __future__ import annotations

import asynctasq.errors
from asynctasq.errors import PermanentError

ModelNotFoundError = asynctasq.errors.ModelNotFoundError
"""Core's error, shared by every ORM package."""


class TortoiseNotInitializedError(PermanentError, RuntimeError):
    """The worker has to fetch a Tortoise model, but Tortoise is not initialised."""
