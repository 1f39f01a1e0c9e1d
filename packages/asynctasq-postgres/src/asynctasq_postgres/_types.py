"""Type aliases shared by the driver's modules."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A plain asyncpg connection or one borrowed from a pool."""

Receipt: TypeAlias = tuple[int, int]
"""A lease token: ``(row id, lease sequence number)``."""

__all__ = ["Connection", "Receipt"]
