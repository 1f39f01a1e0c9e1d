"""AsyncTasQ for FastAPI: a lifespan that configures AsyncTasQ and closes its drivers, and a
``Dispatch`` dependency to queue tasks from endpoints (now, once the endpoint succeeded, or
after a SQLAlchemy commit).

```python
app = FastAPI(lifespan=asynctasq_lifespan({"driver": "redis"}))


@app.post("/signup")
async def signup(address: str, dispatch: Dispatch) -> dict[str, str]:
    return {"task_id": await dispatch(send_welcome(address))}
```
"""

from .dependency import Dispatch, Dispatcher, get_dispatcher
from .lifespan import asynctasq_lifespan

__all__ = ["Dispatch", "Dispatcher", "asynctasq_lifespan", "get_dispatcher"]
