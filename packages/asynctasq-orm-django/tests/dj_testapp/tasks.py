"""Tasks of the tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from asynctasq import task
from asynctasq.core.task import Task

from .models import Membership, Note, Product, User

seen: list[Any] = []


@task(queue="dj")
async def greet(user: User) -> None:
    seen.append(("greet", user.pk, user.name))


@task(queue="dj")
async def update_price(product: Product, user: User, new_price: float) -> None:
    seen.append(("price", product.name, product.price, user.name, new_price))


@task(queue="dj")
def greet_sync(user: User) -> None:
    seen.append(("greet_sync", user.pk, user.name))


@task(queue="dj")
async def maybe_note(note: Note | None) -> None:
    seen.append(("note", note))


@task(queue="dj")
async def maybe_user(user: User | None) -> None:
    seen.append(("maybe", user))


@task(queue="dj")
async def membership_role(membership: Membership) -> None:
    seen.append(("membership", membership.team, membership.user_id, membership.role))


@task(queue="dj")
async def anything(value: Any) -> None:
    seen.append(("anything", type(value).__name__))


class SendWelcomeEmail(Task[None]):
    queue = "dj"

    def __init__(self, user: User, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user = user

    async def handle(self) -> None:
        seen.append(("welcome", self.user.pk, self.user.email))


__all__ = ["Decimal"]
