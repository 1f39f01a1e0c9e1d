"""TLS options reach redis-py: a private TLS-only redis-server with client certificates."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_redis import RedisDriver


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


def _start_tls_server(server: str, d: Path, port: int) -> subprocess.Popen[bytes] | None:
    """A TLS-only redis-server on `port`, or None when it exited (the port was taken)."""
    proc = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(d / "server.crt"), "--tls-key-file", str(d / "server.key"),
         "--tls-ca-cert-file", str(d / "ca.crt"), "--tls-auth-clients", "yes",
         "--save", "", "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not _listening(port):
        if proc.poll() is not None:
            return None
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            pytest.fail("the TLS redis-server did not start (built without TLS?)")
        time.sleep(0.05)
    return proc


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, pick_ports: Callable[..., list[int]]
) -> Iterator[tuple[Path, int]]:
    """(certificate directory, port) of a TLS-only redis-server on a free port."""
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if server is None or openssl is None:
        pytest.skip("redis-server and openssl are needed for the TLS test")
    assert server is not None
    d = tmp_path_factory.mktemp("tls")
    _make_certs(d)
    for _ in range(5):  # another process may take the free port first
        [port] = pick_ports(1)
        proc = _start_tls_server(server, d, port)
        if proc is not None:
            break
    else:
        pytest.fail("the TLS redis-server exited on start five times (ports taken?)")
    try:
        yield d, port
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("scheme", ["rediss", "redis"])
async def test_round_trip_over_mutual_tls(tls_server: tuple[Path, int], scheme: str) -> None:
    tls_dir, port = tls_server
    url = f"{scheme}://127.0.0.1:{port}"
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
