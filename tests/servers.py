"""Real server processes on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(kind: str, app: str, port: int) -> list[str]:
    if kind == "uvicorn":
        return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "info", "--no-access-log"]  # fmt: skip
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    if kind == "wsgi":
        return [sys.executable, "-m", "tests.wsgi_server", str(port)]
    raise ValueError(f"unknown server kind {kind!r}")


# What each server prints once it accepts connections.
_READY = {"uvicorn": "Uvicorn running on", "daphne": "Listening on TCP address", "wsgi": "Serving"}


class LiveServer:
    """A server subprocess; ``start()`` returns once it has said it is listening."""

    def __init__(
        self,
        kind: str,
        app: str = "tests.asgi:application",
        env: dict[str, str] | None = None,
        command: Callable[[int], list[str]] | None = None,
        ready: str | None = None,
        cwd: Path = ROOT,
        port: int | None = None,
    ) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._outcomes = Path(tempfile.mkstemp(prefix="sse-outcomes-")[1])
        self.database = Path(tempfile.mkstemp(prefix="sse-db-", suffix=".sqlite3")[1])
        # JSON lines the lifecycle race views write (tests/lifecycle/journal.py).
        self.journal = Path(tempfile.mkstemp(prefix="sse-journal-")[1])
        self._env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "SSE_TEST_OUTCOMES": str(self._outcomes),
            "SSE_TEST_DB": str(self.database),
            "SSE_TEST_JOURNAL": str(self.journal),
            "SSE_TEST_LOG_STREAMS": "1",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._command = command(self.port) if command else _command(kind, app, self.port)
        self._ready = ready or _READY[kind]
        self._cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._listening = threading.Event()

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run ``python -m django <args>`` with the server's settings and database (and
        ``env`` on top); its output. Raises with the output if the command fails."""
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=self._cwd,
            env={**self._env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(f"django {' '.join(args)} failed:\n{result.stdout}")
        return result.stdout

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: its settings and database, for commands of its own."""
        return dict(self._env)

    def create_user(self, username: str, password: str, *, superuser: bool = False) -> None:
        """A staff user in the server's database, who can log in through the admin."""
        make = "create_superuser" if superuser else "create_user"
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            f"User.objects.{make}({username!r}, password={password!r}, is_staff=True)",
        )

    def log_in(self, username: str, password: str) -> dict[str, str]:
        """The cookies of a session logged in through the admin's login form, as a browser
        logs in: a CSRF cookie, then the form with its token."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            form = client.get("/admin/login/", params={"next": "/admin/"})
            response = client.post(
                "/admin/login/?next=/admin/",
                data={
                    "csrfmiddlewaretoken": client.cookies["csrftoken"],
                    "username": username,
                    "password": password,
                    "next": "/admin/",
                },
                headers={"Referer": f"{self.url}/admin/login/"},
            )
            assert response.status_code == 302, form.text[:500]
            return dict(client.cookies)

    def start(self) -> LiveServer:
        self.manage("migrate", "--noinput", "--skip-checks", "-v0")
        self.process = subprocess.Popen(
            self._command,
            cwd=self._cwd,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if not self._listening.wait(STARTUP_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"{self.kind} did not start:\n{''.join(self.output)}")
        return self

    def _read_output(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if self._ready in line:
                self._listening.set()
        self._listening.set()

    def send_signal(self, signum: int) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=STARTUP_TIMEOUT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self._reader.join(timeout=STARTUP_TIMEOUT)
            self.process.stdout.close()
        self._outcomes.unlink(missing_ok=True)
        self.database.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)

    def outcomes(self) -> dict[str, str]:
        """Outcomes recorded by the server's probed views, by token."""
        lines = self._outcomes.read_text().split() if self._outcomes.exists() else []
        return dict(zip(lines[::2], lines[1::2], strict=True))

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def demo_runserver(database: Path, env: dict[str, str] | None = None) -> LiveServer:
    """The bundled demo started the way the README says: ``manage.py runserver`` (daphne).

    With no LLM provider configured, whatever this process's environment says: ``env``
    can set OPENAI_BASE_URL.
    """
    return LiveServer(
        "daphne",
        command=lambda port: [
            sys.executable,
            "manage.py",
            "runserver",
            "--noreload",
            f"127.0.0.1:{port}",
        ],
        ready="development server at",
        cwd=ROOT / "demo_project",
        env={
            "DJANGO_SETTINGS_MODULE": "demo.settings",
            "DEMO_DB": str(database),
            "OPENAI_API_KEY": "",
            "OPENAI_BASE_URL": "",
            **(env or {}),
        },
    )
