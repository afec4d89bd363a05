"""Fixtures: the tollgate binary, and a fresh Postgres database and Redis
key prefix of the suite's own (created here, removed afterwards). Under CI
a missing Postgres or Redis fails; elsewhere the tests that need one skip
with the reason."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import chartlib as c


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the Postgres and Redis tests)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tollgate_bin() -> Path:
    path = Path(os.environ.get("TOLLGATE_BIN", c.ROOT / "target" / "debug" / "tollgate"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run gateway/tests/helm/run.sh, which builds it")
    return path


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_database():
    """A fresh database on the local Postgres: its URL; dropped afterwards."""
    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(server)
    if not server.startswith(("postgres://", "postgresql://")):
        _unavailable(f"DATABASE_URL is not a Postgres URL ({parts.scheme}://...)")
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if host not in ("127.0.0.1", "localhost", "::1"):
        pytest.fail("the suite talks to loopback only; DATABASE_URL names another host")
    if not _reachable(host, port):
        _unavailable(f"no Postgres answers on {host}:{port}")
    if not shutil.which("psql"):
        _unavailable("psql (Debian's postgresql-client) is not installed")
    name = f"tollgate_helm_{uuid.uuid4().hex[:12]}"

    def psql(sql: str) -> str:
        return subprocess.run(["psql", server, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                              check=True, capture_output=True, text=True, timeout=30).stdout.strip()

    psql(f'CREATE DATABASE "{name}"')
    url = parts._replace(path=f"/{name}").geturl()
    try:
        yield url, lambda sql: subprocess.run(
            ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
            check=True, capture_output=True, text=True, timeout=30).stdout.strip()
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _resp(sock: socket.socket, *args: str):
    """One Redis command over RESP, and its reply."""
    sock.sendall(b"".join([f"*{len(args)}\r\n".encode()]
                          + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]))
    reader = sock.makefile("rb")

    def read():
        line = reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = reader.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            return [read() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")

    return read()


@pytest.fixture
def redis_prefix():
    """A key prefix of the test's own on the local Redis; its keys deleted afterwards."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379"
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in ("127.0.0.1", "localhost", "::1"):
        pytest.fail("the suite talks to loopback only; REDIS_URL names another host")
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            assert _resp(sock, "PING") == "PONG"
    except (OSError, AssertionError, RuntimeError):
        _unavailable(f"no Redis answers on {host}:{port}")
    prefix = f"tollgate-helm-{uuid.uuid4().hex[:12]}"
    try:
        yield url, prefix
    finally:
        with socket.create_connection((host, port), timeout=5) as sock:
            cursor = "0"
            while True:
                cursor, keys = _resp(sock, "SCAN", cursor, "MATCH", f"{prefix}*", "COUNT", "1000")
                if keys:
                    _resp(sock, "DEL", *keys)
                if cursor == "0":
                    break
