"""A raw HTTP/1.1 server on the loopback interface that plays a script, for client tests.

Each incoming connection gets the next :class:`Reply` of the script: a status line and
headers, then body steps played in order: ``bytes`` are written exactly as given (each
its own write), :class:`Hold` waits for a :class:`Gate` the test opens (or for the peer
to hang up), :class:`Signal` opens a gate the test waits on (the script got this far),
:class:`Pause` waits a fixed time (to pace keep-alives), ``ABORT`` resets
the connection (``SO_LINGER`` 0, so the peer sees a reset rather than an end of stream)
and ``STOP_LISTENING`` closes the listening socket, so later connections are refused.
After its last step a reply ends the connection cleanly. Bodies are never chunked: every
reply says ``Connection: close`` and ends its body by closing the socket, unless it
brings its own ``Content-Length``.

Every request (request line, headers and a ``Content-Length`` body) is recorded in
``requests``, in the order the connections arrived. A connection beyond the script gets
a 503, so an unexpected reconnection shows up both to the client and in ``requests``.

:class:`ScriptedServer` runs on the running event loop (async tests);
:class:`ThreadedScriptedServer` runs one in a thread with its own loop (sync tests).
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "ABORT",
    "STOP_LISTENING",
    "Gate",
    "Hold",
    "Pause",
    "RecordedRequest",
    "Reply",
    "ScriptedServer",
    "Signal",
    "Step",
    "ThreadedScriptedServer",
    "dropped",
    "event_stream",
    "no_content",
    "refused_port",
]

HOST: Final = "127.0.0.1"
# The longest any single wait lasts: reading a request, writing, holding a connection.
WAIT_LIMIT: Final = 10.0


class Gate:
    """A signal a test gives the server; ``open()`` is safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()

    def open(self) -> None:
        with self._lock:
            self._opened = True
            loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._event.set)

    @property
    def is_open(self) -> bool:
        return self._opened

    async def wait(self) -> None:
        with self._lock:
            if self._opened:
                return
            self._loop = asyncio.get_running_loop()
        await self._event.wait()


@dataclass(frozen=True)
class Hold:
    """Keep the connection open until ``gate`` opens (never, if None: the server goes
    silent) or the peer hangs up, for at most ``timeout`` seconds."""

    gate: Gate | None = None
    timeout: float = WAIT_LIMIT


@dataclass(frozen=True)
class Signal:
    """Open ``gate``: tells a waiting test that the script reached this step (a reply
    with no status line yet: the client is waiting for the response headers)."""

    gate: Gate


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before the next step (pacing, not synchronisation)."""

    seconds: float


Abort = Literal["abort"]
StopListening = Literal["stop listening"]
ABORT: Final[Abort] = "abort"
STOP_LISTENING: Final[StopListening] = "stop listening"

Step = bytes | Hold | Signal | Pause | Abort | StopListening


@dataclass(frozen=True)
class Reply:
    """One response: ``status`` is the status line after ``HTTP/1.1``; with None, no
    status line or headers are sent, only the body steps (see :func:`dropped`)."""

    status: str | None = "200 OK"
    headers: Sequence[tuple[str, str]] = (("Content-Type", "text/event-stream"),)
    body: Sequence[Step] = ()

    def head(self) -> bytes:
        if self.status is None:
            return b""
        lines = [f"HTTP/1.1 {self.status}", *(f"{name}: {value}" for name, value in self.headers)]
        if not any(name.lower() == "connection" for name, _ in self.headers):
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def event_stream(*body: Step) -> Reply:
    """A 200 ``text/event-stream`` reply with these body steps."""
    return Reply(body=body)


def no_content() -> Reply:
    """A 204 reply: for an event stream client, "stop for good"."""
    return Reply("204 No Content", headers=())


def moved(status: str, location: str) -> Reply:
    """A redirect (``status`` such as "307 Temporary Redirect") to ``location``."""
    return Reply(status, [("Location", location), ("Content-Length", "0")])


def dropped() -> Reply:
    """A connection reset once the request is read, before any response."""
    return Reply(None, body=(ABORT,))


EXHAUSTED: Final = Reply(
    "503 Service Unavailable",
    (("Content-Type", "text/plain"), ("Content-Length", "16")),
    (b"script exhausted",),
)


@dataclass
class RecordedRequest:
    method: str
    target: str
    # Header names lower-cased; a repeated header keeps its last value.
    headers: dict[str, str]
    body: bytes
    raw: bytes = field(repr=False)


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return RecordedRequest(method, target, headers, body, head + body)


class ScriptedServer:
    """Plays ``script`` (extend it with :meth:`play`), one reply per connection."""

    def __init__(self, *script: Reply) -> None:
        self.script: list[Reply] = list(script)
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def play(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def url(self, path: str = "/events") -> str:
        return f"http://{HOST}:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    async def stop(self) -> None:
        """Stop listening, reset every open connection and wait for the handlers."""
        self.stop_listening()
        for writer in list(self._writers):
            _reset(writer)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=WAIT_LIMIT)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), WAIT_LIMIT)

    async def __aenter__(self) -> ScriptedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        index = self.connections
        self.connections += 1
        try:
            try:
                request = await asyncio.wait_for(_read_request(reader), WAIT_LIMIT)
            except (
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                asyncio.TimeoutError,
                ValueError,
            ):
                _reset(writer)
                return
            self.requests.append(request)
            reply = self.script[index] if index < len(self.script) else EXHAUSTED
            await self._play(reply, reader, writer)
            writer.close()  # a no-op after a reset
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), WAIT_LIMIT)
        except (ConnectionError, asyncio.TimeoutError):
            _reset(writer)
        finally:
            if not writer.transport.is_closing():
                _reset(writer)
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _play(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Play a reply, up to its end, a reset or the peer hanging up."""
        if reply.status is not None:
            await self._write(writer, reply.head())
        for step in reply.body:
            if isinstance(step, bytes):
                await self._write(writer, step)
            elif isinstance(step, Hold):
                if await _hold(step, reader):
                    return
            elif isinstance(step, Signal):
                step.gate.open()
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            elif step == ABORT:
                _reset(writer)
                return
            elif step == STOP_LISTENING:
                self.stop_listening()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), WAIT_LIMIT)


async def _hold(hold: Hold, reader: asyncio.StreamReader) -> bool:
    """Wait for the gate, the peer hanging up or the timeout; True if the peer hung up."""
    # The request was read whole: anything more from the peer, or its end, means it left.
    hung_up: asyncio.Future[Any] = asyncio.ensure_future(reader.read(1))
    waits = [hung_up]
    if hold.gate is not None:
        waits.append(asyncio.ensure_future(hold.gate.wait()))
    try:
        done, _ = await asyncio.wait(
            waits, timeout=hold.timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiting in waits:
            waiting.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    return hung_up in done


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset instead of an orderly end of stream."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ThreadedScriptedServer:
    """A :class:`ScriptedServer` on its own event loop in a background thread."""

    def __init__(self, *script: Reply) -> None:
        self.server = ScriptedServer(*script)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="scripted-server", daemon=True
        )

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    def play(self, *replies: Reply) -> None:
        self.server.play(*replies)

    def url(self, path: str = "/events") -> str:
        return self.server.url(path)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(WAIT_LIMIT)

    def stop(self) -> None:
        try:
            stopping = asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
            stopping.result(3 * WAIT_LIMIT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(WAIT_LIMIT)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> ThreadedScriptedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def refused_port() -> int:
    """A loopback port on which nothing listens: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port
