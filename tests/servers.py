"""Real server processes on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
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
    python, bind = sys.executable, ["127.0.0.1", str(port)]
    if kind in ("uvicorn", "uvicorn-workers"):
        workers = ["--workers", str(WORKERS)] if kind == "uvicorn-workers" else []
        return [python, "-m", "uvicorn", app, "--host", bind[0], "--port", bind[1],
                "--log-level", "info", "--no-access-log", *workers]  # fmt: skip
    if kind == "daphne":
        return [python, "-m", "daphne", "-b", bind[0], "-p", bind[1], app]
    if kind == "gunicorn":
        # uvicorn's own gunicorn worker (uvicorn.workers) is deprecated in favour of the
        # uvicorn-worker package; no control socket (gunicorn 25+ opens one in $HOME).
        return [python, "-m", "gunicorn", app, "-k", "uvicorn_worker.UvicornWorker",
                "-w", str(WORKERS), "-b", ":".join(bind), "--no-control-socket"]  # fmt: skip
    if kind in ("hypercorn", "hypercorn-workers"):
        # hypercorn serves from worker processes (one by default) that it stops through
        # a multiprocessing event, not a signal; with --workers 0 it serves from the
        # process that receives the signals.
        count = str(WORKERS) if kind == "hypercorn-workers" else "0"
        return [python, "-m", "hypercorn", app, "-b", ":".join(bind), "--workers", count]
    if kind == "granian":
        return [python, "-m", "granian", "--interface", "asgi", "--host", bind[0],
                "--port", bind[1], "--workers", str(WORKERS), app]  # fmt: skip
    if kind.startswith("runserver-"):
        reload = [] if kind.endswith("-reload") else ["--noreload"]
        return [python, "-m", "django", "runserver", *reload, ":".join(bind)]
    if kind == "wsgi":
        return [python, "-m", "tests.wsgi_server", str(port)]
    raise ValueError(f"unknown server kind {kind!r}")


# Worker processes of the kinds that have several.
WORKERS = 2
# What each server prints once it accepts connections, and how many times: the kinds
# with workers print it once per worker.
_READY = {
    "uvicorn": "Uvicorn running on",
    "uvicorn-workers": "Application startup complete",
    "gunicorn": "Application startup complete",
    "daphne": "Listening on TCP address",
    "hypercorn": "Running on http",
    "hypercorn-workers": "Running on http",
    "granian": "Started worker-",
    "runserver-daphne": "development server at",
    "runserver-daphne-reload": "development server at",
    "runserver-wsgi-reload": "development server at",
    "runserver-wsgi": "development server at",
    "wsgi": "Serving",
}
_READY_COUNT = {
    "uvicorn-workers": WORKERS,
    "gunicorn": WORKERS,
    "granian": WORKERS,
    "hypercorn-workers": WORKERS,
}
# How stop() asks each server to stop. gunicorn's SIGINT is its "quick shutdown", which
# sends SIGQUIT to the workers, and uvicorn's gunicorn worker ignores that (it marks the
# gunicorn worker as not alive, which uvicorn's server never reads): gunicorn SIGKILLs
# them after --graceful-timeout (30 s). Its SIGTERM is the graceful stop.
_STOP_SIGNAL = {"gunicorn": signal.SIGTERM}
# ``manage.py runserver``: daphne's (ASGI) with daphne in INSTALLED_APPS, Django's own
# (WSGI) without.
_SETTINGS = {
    "runserver-daphne": "tests.settings_daphne",
    "runserver-daphne-reload": "tests.settings_daphne",
}


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
        own_session: bool = False,
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
            "DJANGO_SETTINGS_MODULE": _SETTINGS.get(kind, "tests.settings"),
            # The application daphne's runserver serves (tests/settings_daphne.py).
            "SSE_TEST_ASGI_APPLICATION": app.replace(":", "."),
            "SSE_TEST_OUTCOMES": str(self._outcomes),
            "SSE_TEST_DB": str(self.database),
            "SSE_TEST_JOURNAL": str(self.journal),
            "SSE_TEST_LOG_STREAMS": "1",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._command = command(self.port) if command else _command(kind, app, self.port)
        self._ready = ready or _READY[kind]
        self._ready_count = 1 if ready else _READY_COUNT.get(kind, 1)
        self._cwd = cwd
        # A session of its own, so that signal_group() reaches the server's children
        # too, as Ctrl+C in a terminal does (runserver's autoreloader runs the server in
        # a child process). Off by default: a Ctrl+C to the test run then reaches the
        # servers it started.
        self._own_session = own_session
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
            start_new_session=self._own_session,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if (
            not self._listening.wait(STARTUP_TIMEOUT)
            or self.process.poll() is not None
            or not self._accepts()
        ):
            self.stop()
            raise RuntimeError(f"{self.kind} did not start:\n{''.join(self.output)}")
        return self

    def _accepts(self) -> bool:
        """Whether the port takes connections: daphne's runserver prints its address
        before it listens, and a server's message can only say it is about to."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self.process is not None and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            else:
                return True
        return False

    def _read_output(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        seen = 0
        for line in self.process.stdout:
            self.output.append(line)
            if self._ready in line:
                seen += 1
                if seen >= self._ready_count:
                    self._listening.set()
        self._listening.set()

    def send_signal(self, signum: int) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=STARTUP_TIMEOUT)

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to every process of the server, as a terminal's Ctrl+C does
        (a server started with ``own_session``)."""
        assert self.process is not None
        assert self._own_session
        os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(_STOP_SIGNAL.get(self.kind, signal.SIGINT))
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                if self._own_session:  # its workers too, or they keep the pipe open
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self._reader.join(timeout=STARTUP_TIMEOUT)
            # Closing the pipe while the reader still reads from it (a worker outlived
            # the server's main process) would block on the reader's lock.
            if not self._reader.is_alive():
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
