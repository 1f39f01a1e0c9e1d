"""Models and tasks of the tests, importable by name (also by process-pool children).

Table names carry a per-run suffix (``ASYNCTASQ_SA_TEST_SUFFIX``, set by conftest before
anything starts a child process, so children name the same tables).
"""

from __future__ import annotations

import os
import uuid
from typing import Any, ClassVar

from sqlalchemy import String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from asynctasq import task
from asynctasq.core.task import Task

SUFFIX = os.environ.setdefault("ASYNCTASQ_SA_TEST_SUFFIX", uuid.uuid4().hex[:8])

seen: list[Any] = []
"""What the tasks saw, in this process."""


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = f"aq_sa_users_{SUFFIX}"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))


class Order(Base):
    __tablename__ = f"aq_sa_orders_{SUFFIX}"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int]
    total: Mapped[float]


class Membership(Base):
    """A composite primary key of a string and an int."""

    __tablename__ = f"aq_sa_memberships_{SUFFIX}"
    team: Mapped[str] = mapped_column(String(50), primary_key=True)
    user_id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(50))


class Note(Base):
    """A model whose missing rows become None."""

    __tablename__ = f"aq_sa_notes_{SUFFIX}"
    _asynctasq_on_missing: ClassVar[str] = "none"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


class Wide(Base):
    """Thirty text columns: what a model argument saves on the wire."""

    __tablename__ = f"aq_sa_wide_{SUFFIX}"
    id: Mapped[int] = mapped_column(primary_key=True)


for _i in range(30):
    setattr(Wide, f"col_{_i:02d}", mapped_column(Text))


@task(queue="sa")
async def greet(user: User) -> None:
    seen.append(("greet", user.id, user.name))


@task(queue="sa")
async def process_order(order: Order, user: User) -> None:
    seen.append(("order", order.id, order.total, user.name))


@task(queue="sa")
def greet_sync(user: User) -> None:
    seen.append(("greet_sync", user.id, user.name))


@task(queue="sa")
async def membership_role(membership: Membership) -> None:
    seen.append(("membership", membership.team, membership.user_id, membership.role))


@task(queue="sa")
async def maybe_note(note: Note | None) -> None:
    seen.append(("note", note))


@task(queue="sa")
async def maybe_greet(user: User | None) -> None:
    seen.append(("maybe", user))


@task(queue="sa", process=True)
async def name_in_child(user: User) -> str:
    return f"{os.getpid()}:{user.name}"


@task(queue="sa")
async def wide_task(row: Any) -> None:
    seen.append(("wide", row.id))


class SendWelcomeEmail(Task[None]):
    queue = "sa"

    def __init__(self, user: User, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user = user

    async def handle(self) -> None:
        seen.append(("welcome", self.user.id, self.user.email))


# Process-pool children import this module afresh: they configure the factory the way a
# deployment would, from their environment.
if _worker_url := os.environ.get("SA_TESTAPP_WORKER_URL"):
    from asynctasq_orm_sqlalchemy import worker_session_factory

    Base._asynctasq_session_factory = worker_session_factory(_worker_url)  # type: ignore[attr-defined]
