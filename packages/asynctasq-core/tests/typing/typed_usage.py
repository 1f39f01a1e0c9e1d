# Checked by mypy in test_static_typing.py; each line marked "E:" must be reported.
from asynctasq import TaskId, task
from asynctasq.core.task import Task


@task(queue="emails")
async def send_email(to: str, retries: int = 3) -> bool:
    return True


class Sum(Task[int]):
    def __init__(self, numbers: list[int]) -> None:
        super().__init__()
        self.numbers = numbers

    async def handle(self) -> int:
        return sum(self.numbers)


async def usage() -> None:
    ok: str = await send_email("a@b.c").on_queue("q").delay(5).dispatch()
    send_email(to=1)  # E: wrong argument type
    send_email("a", nope=2)  # E: unexpected keyword
    total: str = await Sum([1, 2]).handle()  # E: Task[int] returns int
    print(total)
    await Sum([1]).timeout(30).max_attempts(2).dispatch()
    print(ok)


def celery_habits() -> None:
    send_email.delay("a@b.c")  # E: no Celery methods: they raise at run time, with the way here
    task(max_retries=3)  # E: nor Celery's decorator options


async def awaited_without_dispatch() -> None:
    await send_email("a@b.c")  # E: a task is dispatched, not awaited
    await Sum([1])  # E: a class task neither


async def typed_ids() -> None:
    sent = await send_email("a@b.c").dispatch()
    flag: bool = await sent.result()
    wrong: str = await sent.result()  # E: the task returns bool
    total: int = await (await Sum([1]).dispatch()).result()
    also_wrong: bytes = await (await Sum([1]).dispatch()).result()  # E: Task[int] gives int
    kept: TaskId[bool] = sent
    mismatched: TaskId[str] = sent  # E: TaskId[bool] is not TaskId[str]
    print(flag, wrong, total, also_wrong, kept, mismatched)


def typed_driver_shims() -> None:
    from asynctasq.drivers.redis_driver import RedisDriver
    from asynctasq.drivers.sqlite_driver import SqliteDriver

    RedisDriver(url="redis://127.0.0.1:6379/0", prefix="app")
    RedisDriver(urll="redis://")  # E: the shim re-exports the typed class
    SqliteDriver(path=3.5)  # E: a path is str or Path, not float
