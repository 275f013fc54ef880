"""What both benchmarks share: a server process on a free loopback port, /proc readings,
the open-file limit, medians and the results file.

It lives apart so that each benchmark script reads as its method, top to bottom. Linux
only: the figures come from /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SERVERS = ("uvicorn", "daphne")
HOST = "127.0.0.1"

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def server_command(server: str, app: str, port: int | str) -> list[str]:
    """The command line each server is started with (the same the README documents)."""
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port),
                "--log-level", "warning", "--no-access-log"]  # fmt: skip
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), app]
    raise ValueError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the server child before exec: if the benchmark is killed, even by SIGKILL,
    the kernel kills the server too, so no server outlives its benchmark."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Server:
    """One ASGI server process serving ``app``; as a context manager it is always stopped.

    Its output goes to a temporary file (a pipe nobody reads could fill and stall it):
    shown if the server fails to start, and searched for tracebacks after the runs.
    """

    def __init__(
        self, server: str, app: str, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.server = server
        self.app = app
        self._env = env or {}
        # A port chosen beforehand, e.g. one a proxy in front was configured with.
        self.port = port or free_port()
        self.command = server_command(server, app, self.port)
        self._log: IO[bytes] | None = None
        self.final_output = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "server not started"
        return self._process.pid

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop())
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env}
        self._process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # safe: the benchmark starts no threads
        )
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"{self.server} exited at startup:\n{self.output()[-4000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.server} did not listen within {STARTUP_TIMEOUT:.0f} s")

    def output(self) -> str:
        """Everything the server printed so far (all of it, once stopped)."""
        if self._log is None:
            return self.final_output
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def tracebacks(self) -> int:
        """How many tracebacks the server logged: a clean run has none."""
        return self.output().count("Traceback (most recent call last)")

    def errors(self, limit: int = 5) -> list[str]:
        """The distinct exception lines (``SomeError: message``) the server logged."""
        found: list[str] = []
        for line in self.output().splitlines():
            if EXCEPTION_LINE.match(line) and line not in found:
                found.append(line[:300])
        return found[:limit]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server is still there after STOP_TIMEOUT."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self.final_output = self.output()
            self._log.close()
            self._log = None


@dataclass(frozen=True)
class ProcessSample:
    """One reading of a process from /proc (whole process, all threads)."""

    rss_kib: int
    threads: int
    cpu_seconds: float
    open_fds: int


def sample(pid: int) -> ProcessSample:
    status: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    # The command name in field 2 may contain spaces and parentheses: split after it.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return ProcessSample(
        rss_kib=int(status["VmRSS"].split()[0]),
        threads=int(status["Threads"]),
        cpu_seconds=(utime + stime) / CLOCK_TICKS,
        open_fds=len(os.listdir(f"/proc/{pid}/fd")),
    )


def raise_open_file_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; server children inherit it.

    Exits with a message if even the hard limit is below ``needed``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(
            f"Need about {needed} open files but the hard limit is {hard}: raise it "
            f"(e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE) or pass fewer --streams."
        )
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``with Server(...)`` blocks still stop servers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def run(main: Callable[[], int]) -> NoReturn:
    """Exit with what a benchmark's ``main()`` returns; Ctrl-C (its servers are stopped
    on the way out) exits with 130 and a line saying so, not a traceback."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        sys.exit(130)


def median_of(runs: Iterable[dict[str, Any]], keys: Iterable[str]) -> dict[str, float]:
    rows = list(runs)
    return {key: statistics.median(float(row[key]) for row in rows) for key in keys}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def source_fingerprint() -> str:
    """A short hash of django_sse's sources: which version of the code was measured."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "django_sse").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def environment() -> dict[str, Any]:
    """What the figures depend on, stored next to them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "django_sse_sources_sha256": source_fingerprint(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "rlimit_nofile": [soft, hard],
        "packages": {
            name: _version(name)
            for name in (
                "django-sse-kit",
                "Django",
                "asgiref",
                "uvicorn",
                "daphne",
                "Twisted",
                "h11",
                "httptools",
                "uvloop",
            )
        },
    }


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def migrate(site: str, env: dict[str, str]) -> None:
    """Create a bench site's tables in the sqlite file ``env`` names, in a process of its
    own (``python -m <site>``), before any server of the run starts."""
    subprocess.run(
        [sys.executable, "-m", site],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        timeout=120,
    )


def write_results(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON through a temporary file, so an interrupted run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    temporary.replace(path)


def display_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def default_output(name: str, server: str) -> Path:
    """``results/<name>.json`` for uvicorn; other servers get their own file."""
    suffix = "" if server == "uvicorn" else f".{server}"
    return RESULTS / f"{name}{suffix}.json"
