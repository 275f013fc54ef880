"""What the chaos tests start and break: a private Redis, a PostgreSQL database of their
own, and a look at a server process's memory."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.needs import unavailable
from tests.servers import free_port

STARTUP_TIMEOUT = 30.0
# The PostgreSQL server (user postgres, trust auth) where each run creates its database.
PGHOST = os.environ.get("SSE_CHAOS_PGHOST", "127.0.0.1")


class PrivateRedis:
    """A ``redis-server`` of the test's own on a free loopback port, without persistence:
    a restart loses everything, as a crashed Redis without AOF does. The shared Redis at
    6379 is never touched."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis", "No redis-server binary on PATH to start a private Redis")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix="sse-chaos-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        command = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                   "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                   "--logfile", str(self.directory / "redis.log")]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server did not start on {self.port}:\n{log}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def restart(self) -> None:
        """Stop Redis and start it again, empty, on the same port."""
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self.start)
        self.restarts += 1

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(host=PGHOST, user="postgres", dbname="postgres", autocommit=True)
    except psycopg.OperationalError as error:
        unavailable("postgres", f"No PostgreSQL reachable at {PGHOST}:5432: {error}")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test run, dropped afterwards; its name."""
    name = f"django_sse_chaos_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(database: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows of one query on a chaos database."""
    with psycopg.connect(host=PGHOST, user="postgres", dbname=database) as connection:
        return list(connection.execute(sql, params).fetchall())


def rss_kib(pid: int) -> int:
    """A process's resident memory now (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")
