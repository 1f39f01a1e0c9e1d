"""A web dashboard for AsyncTasQ: queues with their depths and throughput, tracked tasks,
dead letters (inspect, retry, purge), schedules and live workers, updated live.

``asynctasq dashboard --port 8080`` serves it; `create_app` builds it as an ASGI
application to mount inside your own::

    from asynctasq_dashboard import TokenAuth, create_app

    app.mount("/tasks", create_app(auth=TokenAuth(os.environ["DASHBOARD_TOKEN"])))
"""

from asynctasq_dashboard.app import create_app
from asynctasq_dashboard.auth import Auth, BasicAuth, TokenAuth, check_bind, is_loopback

__all__ = ["Auth", "BasicAuth", "TokenAuth", "check_bind", "create_app", "is_loopback"]
