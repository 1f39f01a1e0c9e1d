"""Tasks of the tests."""

from __future__ import annotations

from typing import Any

from asynctasq import task
from asynctasq.core.task import Task

from .models import Note, Post, User

seen: list[Any] = []


@task(queue="tt")
async def notify_new_post(post: Post, author: User) -> None:
    seen.append(("post", post.title, author.name))


@task(queue="tt")
async def maybe_note(note: Note | None) -> None:
    seen.append(("note", note))


@task(queue="tt")
async def maybe_user(user: User | None) -> None:
    seen.append(("maybe", user))


@task(queue="tt")
async def anything(value: Any) -> None:
    seen.append(("anything", type(value).__name__))


class NotifyNewPost(Task[None]):
    queue = "tt"

    def __init__(self, post: Post, author: User, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.post = post
        self.author = author

    async def handle(self) -> None:
        await self.post.fetch_related("author")
        seen.append(("class", self.post.title, self.post.author.name, self.author.email))
