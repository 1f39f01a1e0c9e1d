"""Who may see the dashboard: token or basic auth, and never off loopback without one."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from dash_testing import BASE, form_token

from asynctasq.drivers.memory import MemoryDriver
from asynctasq.errors import ConfigError
from asynctasq_dashboard import BasicAuth, TokenAuth, check_bind, create_app, is_loopback
from asynctasq_dashboard.auth import SESSION_COOKIE

TOKEN = "s3cret-token-of-some-length"
SCRIPT = Path(sys.executable).with_name("asynctasq")


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_auth(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "dash.example"])
def test_any_other_address_needs_auth(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="without authentication.*ASYNCTASQ_DASHBOARD_TOKEN"):
        check_bind(host, None)
    check_bind(host, TokenAuth(TOKEN))
    check_bind(host, BasicAuth("ops", "a-long-password"))


def test_weak_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        TokenAuth("short")
    with pytest.raises(ConfigError, match="at least 12"):
        BasicAuth("ops", "short")
    with pytest.raises(ConfigError, match="USER:PASSWORD"):
        BasicAuth.parse("no-colon")
    assert TOKEN not in repr(TokenAuth(TOKEN))


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
    return {**env, **extra}


@pytest.mark.skipif(not SCRIPT.exists(), reason=f"{SCRIPT} is not installed (uv sync)")
def test_the_command_refuses_a_public_bind_without_auth(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "dashboard", "--host", "0.0.0.0", "--driver", "memory"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=cli_env(),
    )
    assert done.returncode == 2, done.stderr
    assert "without authentication" in done.stderr
    weak = subprocess.run(
        [str(SCRIPT), "dashboard", "--host", "0.0.0.0", "--driver", "memory"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=cli_env(ASYNCTASQ_DASHBOARD_TOKEN="weak"),
    )
    assert weak.returncode != 0
    assert "at least 16 characters" in weak.stderr
    assert "warning" not in weak.stderr  # the dashboard's variables are not misspelt settings


async def test_token_auth() -> None:
    app = create_app(MemoryDriver(), auth=TokenAuth(TOKEN))
    async with client_for(app) as c:
        api = await c.get("/workers")
        assert api.status_code == 401
        page = await c.get("/workers?x=1", headers={"accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fworkers%3Fx%3D1"
        assert (
            await c.get("/workers", headers={"authorization": "Bearer nope"})
        ).status_code == 401
        ok = await c.get("/workers", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        # The browser's way: the login form, then a session cookie.
        login = await c.get("/login?next=/workers")
        token = form_token(login.text)
        wrong = await c.post("/login", data={"token": "x" * 20, "csrf_token": token})
        assert wrong.status_code == 401
        assert SESSION_COOKIE not in c.cookies
        done = await c.post(
            "/login", data={"token": TOKEN, "next": "/workers", "csrf_token": token}
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/workers"
        cookie = c.cookies[SESSION_COOKIE]
        assert TOKEN not in cookie
        assert "httponly" in done.headers["set-cookie"].lower()
        assert "samesite=strict" in done.headers["set-cookie"].lower()
        assert (await c.get("/workers")).status_code == 200


async def test_login_goes_nowhere_but_the_dashboard() -> None:
    app = create_app(MemoryDriver(), auth=TokenAuth(TOKEN))
    async with client_for(app) as c:
        token = form_token((await c.get("/login")).text)
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            done = await c.post(
                "/login", data={"token": TOKEN, "next": target, "csrf_token": token}
            )
            assert done.headers["location"] == "/"


async def test_basic_auth() -> None:
    app = create_app(MemoryDriver(), auth=BasicAuth("ops", "a-long-password"))

    def header(user: str, password: str) -> dict[str, str]:
        raw = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"authorization": f"Basic {raw}"}

    async with client_for(app) as c:
        refused = await c.get("/", headers={"accept": "text/html"})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic ")
        assert (await c.get("/static/app.css")).status_code == 401
        assert (await c.get("/", headers=header("ops", "wrong-password"))).status_code == 401
        assert (await c.get("/", headers=header("root", "a-long-password"))).status_code == 401
        bad = {"authorization": "Basic !!!not-base64"}
        assert (await c.get("/", headers=bad)).status_code == 401
        assert (await c.get("/", headers=header("ops", "a-long-password"))).status_code == 200


async def test_without_auth_the_login_page_does_not_exist(client: httpx.AsyncClient) -> None:
    assert (await client.get("/login")).status_code == 404
