"""Exceptions raised while turning a model reference back into a model instance."""

from __future__ import annotations

import asynctasq.errors

ModelNotFoundError = asynctasq.errors.ModelNotFoundError
"""Core's error, shared by every ORM package."""
