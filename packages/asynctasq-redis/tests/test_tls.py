"""TLS options reach redis-py: a private TLS-only redis-server with client certificates."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_redis import RedisDriver

TLS_PORT = int(os.environ.get("ASYNCTASQ_TEST_TLS_REDIS_PORT", "7210"))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_certs(d: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if server is None or openssl is None:
        pytest.skip("redis-server and openssl are needed for the TLS test")
    assert server is not None
    d = tmp_path_factory.mktemp("tls")
    _make_certs(d)
    proc = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(TLS_PORT), "--bind", "127.0.0.1",
         "--tls-cert-file", str(d / "server.crt"), "--tls-key-file", str(d / "server.key"),
         "--tls-ca-cert-file", str(d / "ca.crt"), "--tls-auth-clients", "yes",
         "--save", "", "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not _listening(TLS_PORT):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the TLS redis-server did not start (built without TLS?)")
            time.sleep(0.05)
        yield d
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("url", [f"rediss://127.0.0.1:{TLS_PORT}", f"redis://127.0.0.1:{TLS_PORT}"])
async def test_round_trip_over_mutual_tls(tls_dir: Path, url: str) -> None:
    driver = RedisDriver(
        url=url,
        prefix=f"tls-{uuid.uuid4().hex[:8]}",
        ssl=url.startswith("redis:"),  # the same as rediss://
        ssl_ca_certs=str(tls_dir / "ca.crt"),
        ssl_certfile=str(tls_dir / "client.crt"),
        ssl_keyfile=str(tls_dir / "client.key"),
    )
    try:
        message = OutgoingMessage(str(uuid.uuid4()), "q", b"secret")
        await driver.enqueue(message)
        got = await driver.dequeue(["q"], limit=1, wait=1.0)
        assert [d.payload for d in got] == [b"secret"]
        await driver.ack(got)
    finally:
        await driver.close()
