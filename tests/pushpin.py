"""A real Pushpin (GRIP proxy) in front of test origins, on free loopback ports.

Debian's ``pushpin`` package (1.36) brings the runner (``pushpin``), ``pushpin-proxy``,
``pushpin-handler``, ``condure`` (the client-facing HTTP server) and ``zurl`` (the HTTP
client that talks to origins). Its own config sends origin requests through a system zurl
at /var/run/zurl, which does not run on our machines; the config written here makes the
runner start a zurl of its own and points the proxy at it.

The runner puts each service in a process group of its own, so "the process group" of the
runner is not all of Pushpin: it is started as the leader of a new session, and ``stop()``
ends every process of that session (found by session id, never by name).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from django_sse.broadcast._pushpin_config import HANDLER_PORTS, config_sections, render
from tests.grip_origin import GripOrigin, hold_stream
from tests.needs import unavailable
from tests.servers import free_port

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# The services the runner starts, and the name each one's log lines carry.
SERVICES = {
    "condure": "condure",
    "zurl": "zurl",
    "pushpin-proxy": "proxy",
    "pushpin-handler": "handler",
}
# The handler's ports before ``port_offset``: ZMQ push-in (PULL), HTTP publish endpoint,
# ZMQ push-in (SUB), command (REP).
# The fixture's own origin answers this path, so start() can see a request make the trip.
PROBE_PATH = "/.pushpin-fixture-probe/"
PROBE_BODY = b"pushpin-fixture-ready"
INSTALL_HINT = "apt-get install pushpin (Debian's package brings condure and zurl)"


def pushpin_binary() -> str:
    """The path of the ``pushpin`` runner; otherwise skip (or fail, where required)."""
    path = shutil.which(os.environ.get("PUSHPIN", "pushpin"))
    if path is None:
        unavailable("pushpin", f"no pushpin on PATH: {INSTALL_HINT}")
    missing = [name for name in ("condure", "zurl", "pushpin-proxy", "pushpin-handler")
               if shutil.which(name) is None]  # fmt: skip
    if missing:
        unavailable("pushpin", f"pushpin found but not {', '.join(missing)}: {INSTALL_HINT}")
    return path


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_offset(avoid: Iterable[int] = ()) -> int:
    """A ``port_offset`` whose four handler ports (5560..5563 + offset) are all free."""
    avoid = set(avoid)
    rng = random.Random()
    for _ in range(200):
        offset = rng.randrange(1000, 55000)
        ports = [base + offset for base in HANDLER_PORTS.values()]
        if avoid.isdisjoint(ports) and all(_port_is_free(port) for port in ports):
            return offset
    raise RuntimeError("found no port_offset with four free handler ports")


def routes_line(origins: Iterable[int], condition: str = "*") -> str:
    """One route to several origins on loopback. Targets are separated by spaces: a comma
    starts a target's options (``127.0.0.1:A,127.0.0.1:B`` is ONE target, port A)."""
    return " ".join([condition, *(f"127.0.0.1:{port}" for port in origins)])


def _session_members(sid: int) -> dict[int, str]:
    """Live processes (not zombies) of session ``sid``: pid -> command name."""
    members: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; fields follow ')'.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(session) == sid and state != "Z":
            members[int(entry)] = name
    return members


class Pushpin:
    """A Pushpin instance routing every request to ``origins`` (loopback ports).

    ``settings`` adds or overrides config keys by section, e.g.
    ``{"handler": {"message_rate": "10"}}``. ``log_level=3`` logs every request and
    publish (useful to study GRIP behaviour).
    """

    def __init__(
        self,
        origins: Iterable[int],
        sig_key: str = "pushpin-test-key",
        log_level: int = 2,
        settings: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.binary = pushpin_binary()
        self.origins = list(origins)
        self.sig_key = sig_key
        self.log_level = log_level
        self.http_port = free_port()
        self.port_offset = free_port_offset(avoid=[self.http_port, *self.origins])
        self.ports = {name: base + self.port_offset for name, base in HANDLER_PORTS.items()}
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.publish_url = f"http://127.0.0.1:{self.ports['publish']}/publish/"
        self.directory = Path(tempfile.mkdtemp(prefix="pushpin-test-"))
        self.config = self.directory / "pushpin.conf"
        self.routes = self.directory / "routes"
        self._settings = settings or {}
        self._probe_origin = GripOrigin(
            lambda request: hold_stream("pushpin-fixture-probe", PROBE_BODY + b"\n")
        ).start()
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._started: set[str] = set()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._write_config()

    # -- configuration ---------------------------------------------------------------

    def _sections(self) -> dict[str, dict[str, str]]:
        """What ``manage.py sse_pushpin`` writes, on this fixture's ports, with the
        test's own settings on top."""
        sections = config_sections(
            http_port=f"127.0.0.1:{self.http_port}",
            publish_port=self.ports["publish"],
            sig_key=self.sig_key,
            directory=self.directory,
            log_level=self.log_level,
        )
        for section, values in self._settings.items():
            sections.setdefault(section, {}).update(values)
        return sections

    def _write_config(self) -> None:
        (self.directory / "run").mkdir(exist_ok=True)
        (self.directory / "log").mkdir(exist_ok=True)
        self.config.write_text(render(self._sections()))
        probe = routes_line([self._probe_origin.port], f"*,path_beg={PROBE_PATH}")
        self.routes.write_text(routes_line(self.origins) + "\n" + probe + "\n")

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Pushpin:
        """Start the runner; return once a request has made the whole trip.

        Every service saying "started" is not enough: the services talk over ZeroMQ, and
        until each connection is up a message can be lost (seen here: zurl's answer to the
        first request after a start published before the proxy's subscription arrived, and
        the client left waiting). So a probe request, routed to a probe origin of the
        fixture's own that holds it as a stream, goes through condure, the proxy, zurl and
        the handler, and is repeated (each try bounded) until its initial body arrives.
        """
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("pushpin is already running")
        self._started = set()
        self._ready.clear()
        self.process = subprocess.Popen(
            [self.binary, "--config", str(self.config), "--merge-output"],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        if not self._ready.wait(STARTUP_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"pushpin did not start:\n{self.log()}")
        self._probe(deadline)
        return self

    def _read_output(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        # "[INFO] <date> <time> [proxy] started"; condure repeats its name.
        ready = re.compile(r"\[(\w+)\] (?:\[\w+\] )?started$")
        for line in self.process.stdout:
            with self._lock:
                self.output.append(line)
            match = ready.search(line.rstrip("\n"))
            if match and match.group(1) in SERVICES.values():
                self._started.add(match.group(1))
                if self._started == set(SERVICES.values()):
                    self._ready.set()
        self._ready.set()  # the runner exited: wake start() to report it

    def _probe(self, deadline: float) -> None:
        request = f"GET {PROBE_PATH} HTTP/1.1\r\nHost: probe\r\n\r\n".encode()
        attempt_timeout = 0.25
        while True:
            received = b""
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=5) as sock:
                    sock.sendall(request)
                    sock.settimeout(attempt_timeout)
                    while PROBE_BODY not in received:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        received += chunk
            except OSError:  # refused, reset, or this try's time is up
                pass
            if PROBE_BODY in received:
                return
            if (
                time.monotonic() > deadline
                or self.process is None
                or self.process.poll() is not None
            ):
                self.stop()
                raise RuntimeError(f"no answer through pushpin ({received!r}):\n{self.log()}")
            attempt_timeout = min(attempt_timeout * 2, 2.0)

    def processes(self) -> dict[int, str]:
        """The live processes of this instance (its session): pid -> command name."""
        if self.process is None:
            return {}
        return _session_members(self.process.pid)

    def stop(self) -> None:
        """SIGTERM to the runner (it stops its services), then SIGKILL whatever of its
        session is left; returns once no process of the session lives."""
        if self.process is None:
            return
        sid = self.process.pid
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Services the runner did not stop (or all of them, if the runner was killed).
        deadline = time.monotonic() + STOP_TIMEOUT
        while members := _session_members(sid):
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL)
            if time.monotonic() > deadline + STOP_TIMEOUT:
                raise RuntimeError(f"pushpin processes survive SIGKILL: {members}")
            time.sleep(0.05)
        if self.process.stdout is not None:
            self._reader.join(timeout=STOP_TIMEOUT)
            self.process.stdout.close()

    def restart(self) -> Pushpin:
        """Stop and start again on the same ports (held connections are dropped)."""
        self.stop()
        with self._lock:
            self.output.append("--- restart ---\n")
        return self.start()

    def close(self) -> None:
        self.stop()
        self._probe_origin.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        """Everything the runner and its services printed so far (all runs)."""
        with self._lock:
            return "".join(self.output)

    def __enter__(self) -> Pushpin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
