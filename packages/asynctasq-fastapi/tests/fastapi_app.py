"""The application the tests drive (and the real worker imports for its task).

No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at
runtime, and one of them names a dependency local to `create_app`.
"""

import os
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from asynctasq import task
from asynctasq_fastapi import Dispatch, asynctasq_lifespan
from asynctasq_fastapi.dependency import Dispatcher


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)


@task(queue="signups")
async def send_welcome(address: str) -> None:
    with open(os.environ["SIGNUPS_FILE"], "a") as out:
        out.write(f"{address}\n")


def create_app(settings: Mapping[str, Any], database_url: str) -> FastAPI:
    engine = create_async_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as s:
            yield s

    async def tables(app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield
        await engine.dispose()

    from contextlib import asynccontextmanager

    app = FastAPI(lifespan=asynctasq_lifespan(settings, inner=asynccontextmanager(tables)))

    @app.post("/signup")
    async def signup(address: str, dispatch: Dispatch) -> dict[str, str]:
        return {"task_id": await dispatch(send_welcome(address))}

    @app.post("/signup-on-success")
    async def signup_on_success(address: str, fail: bool, dispatch: Dispatch) -> dict[str, str]:
        dispatch.on_success(send_welcome(address))
        if fail:
            raise HTTPException(400, "refused")
        return {}

    @app.post("/users")
    async def create_user(
        email: str,
        fail: bool,
        dispatch: Dispatch,
        db: Annotated[AsyncSession, Depends(session)],
    ) -> dict[str, int]:
        user = User(email=email)
        db.add(user)
        dispatch.after_commit(db, send_welcome(email))
        await db.flush()
        if fail:
            await db.rollback()
            raise HTTPException(409, "rolled back")
        await db.commit()
        return {"id": user.id}

    return app


class Signups:
    """A service built per request by a dependency with ``yield`` that takes ``Dispatch``."""

    def __init__(self, dispatch: Dispatcher) -> None:
        self.dispatch = dispatch

    def welcome(self, address: str) -> None:
        self.dispatch.on_success(send_welcome(address))


async def signups(dispatch: Dispatch) -> AsyncIterator[Signups]:
    yield Signups(dispatch)


def create_service_app(settings: Mapping[str, Any]) -> FastAPI:
    app = FastAPI(lifespan=asynctasq_lifespan(settings))

    @app.post("/signup")
    async def signup(
        address: str, service: Annotated[Signups, Depends(signups, scope="function")]
    ) -> dict[str, str]:
        service.welcome(address)
        return {}

    return app
