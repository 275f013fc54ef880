"""A local server that speaks OpenAI's chat-completions wire format, for tests and benchmarks.

Why: our LLM streaming is built on the official ``openai`` SDK, and the only honest test of it
is the real SDK over real HTTP. This server speaks what the SDK expects (HTTP/1.1 keep-alive,
``text/event-stream`` of ``data: {json}`` events ended by ``data: [DONE]``, OpenAI-shaped JSON
errors and headers), records every request, and timestamps what it writes, so tests can await
"the client went away" instead of sleeping and benchmarks can measure per-token latency.

It runs on the caller's event loop (``async with Upstream() as upstream``) or on a thread of its
own (``with Upstream.in_thread() as upstream``) for a Django server in another process or a
benchmark. The scenario is the first segment of the base URL's path:
``AsyncOpenAI(base_url=upstream.base_url("answer"))`` posts to
``http://127.0.0.1:<port>/answer/v1/chat/completions``.

Scenarios:

``<name>``               replays ``recordings/<name>.jsonl``, one ``data:`` payload per line:
    ``answer``               a short answer in 20 content deltas, finish_reason "stop"
    ``tool-calls``           two parallel ``get_weather`` tool calls whose arguments arrive in
                             pieces, finish_reason "tool_calls"
    ``mid-stream-error``     seven content deltas, then the ``{"error": {...}}`` event OpenAI
                             sends when it fails mid-stream (the SDK raises ``openai.APIError``)
    ``markup``               an answer whose text is markup and script that must never run
                             in a page, line breaks on their own, quotes and non-ASCII
    ``split-pairs``          an emoji cut into its two UTF-16 halves, escaped in two chunks
                             (as a server that slices strings between code units sends it),
                             a NUL and a lone half
    ``refusal``              a refusal: the model's "I'm sorry, ..." in 10 ``refusal`` deltas
                             (``content`` stays null), finish_reason "stop", as OpenAI
                             streams one
``slow-<ms>[-<n>]``      a content token every <ms> milliseconds; <n> tokens, at most and by
                         default ``Upstream.slow_max_tokens`` (500)
``fast-<n>``             <n> content tokens, written as fast as the client takes them
                         (at most ``Upstream.fast_max_tokens``)
``cut-short-<n>``        <n> content tokens, then the body ends cleanly, with no
                         finish_reason and no ``[DONE]``: an answer cut short
``dropped-<n>``          <n> content tokens, then the connection is reset
``partial-usage-<what>`` three content tokens, finish_reason "stop", then usage without
                         ``<what>_tokens`` (``prompt`` or ``completion``) and without
                         ``total_tokens``, as some OpenAI-compatible servers send it; with
                         ``garbled``, usage whose counts are the text "many" and -1
``unreadable-<what>``    three content tokens, then a ``data:`` line the SDK or a reader of
                         chunks cannot read, then the rest of a finished answer: <what> is
                         ``not-json`` (JSON cut off), ``not-an-object`` (a JSON list),
                         ``not-utf-8`` (a byte that is not UTF-8), ``content-not-text``
                         (a delta whose content is a number), ``arguments-not-text`` (a
                         tool call whose arguments are an object, not a JSON string),
                         ``index-not-a-number`` (a choice whose index is the text "0") or
                         ``finish-reason-not-text`` (a finish_reason that is an object)
``unauthorized``         401 ``invalid_api_key``
``rate-limited[-<s>]``   429 ``rate_limit_exceeded`` with ``retry-after: <s>`` (default "1";
                         the SDK honours fractions such as ``rate-limited-0.01``)
``context-length``       400 ``context_length_exceeded``
``server-error``         500 ``server_error``
``hang-up``              the connection closes once the request is read, with no answer

Streams are shaped as OpenAI shapes them: chunks carry ``usage: null`` and a last chunk with
``choices: []`` and the usage only when the request sets ``stream_options.include_usage``;
``obfuscation`` is dropped when it sets ``include_obfuscation: false`` (synthetic streams never
carry it). Slow and fast tokens are ``"t{index} "``, so a reader can tell which token it holds,
and ``RequestRecord.token_times[index]`` is when that token's bytes had been handed to the kernel
(``drain()`` with no user-space buffering); in replays every content or refusal delta counts as a
token.
To measure latency, pace the tokens (``slow-<ms>``): a fast stream outruns any reader, and its
tokens then wait in socket buffers.
Without ``stream: true`` the replayed and fast scenarios answer with the whole completion (the
unreadable ones without their unreadable line), the mid-stream error becomes a 500, and the slow
scenario refuses with a 400.

Every scenario ends by itself, and closing the server aborts whatever is still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

RECORDINGS = Path(__file__).resolve().parent / "recordings"

Closer = Literal["client", "server"]
Outcome = Literal["completed", "client-closed", "server-closed"]
Json = dict[str, Any]

_ROUTE = re.compile(r"/(?P<scenario>[^/]+)/v1/chat/completions")
_SLOW = re.compile(r"slow-(?P<ms>\d+)(?:-(?P<count>\d+))?")
_FAST = re.compile(r"fast-(?P<count>\d+)")
_CUT = re.compile(r"(?P<how>cut-short|dropped)-(?P<count>\d+)")
_PARTIAL_USAGE = re.compile(r"partial-usage-(?P<missing>prompt|completion|garbled)")
_UNREADABLE = re.compile(r"unreadable-(?P<what>[a-z0-9-]+)")
_RATE_LIMITED = re.compile(r"rate-limited(?:-(?P<seconds>\d+(?:\.\d+)?))?")
_RECORDING_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
_READ_SIZE = 64 * 1024
_FINGERPRINT = "fp_5e1b7c09ad"
# What the unreadable-<what> scenarios send after their third token, as an event's data.
_UNREADABLE_DATA = {
    "not-json": b'{"id":"chatcmpl-cut","choices":[{"index":0,"delta":{"content":"t3',
    "not-an-object": b'["t3 "]',
    "not-utf-8": b'{"choices":[{"index":0,"delta":{"content":"t3 \xff"}}]}',
    "content-not-text": b'{"choices":[{"index":0,"delta":{"content":3}}]}',
    "arguments-not-text": b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
    b'"id":"call_1","function":{"name":"get_weather","arguments":{"city":"Paris"}}}]}}]}',
    "index-not-a-number": b'{"choices":[{"index":"0","delta":{"content":"t3 "}}]}',
    "finish-reason-not-text": b'{"choices":[{"index":0,"delta":{},"finish_reason":{"why":1}}]}',
}
_ALPHANUMERIC = string.ascii_letters + string.digits


class _Signal:
    """A one-shot flag that threads and coroutines on any event loop can wait for.

    Why not ``asyncio.Event``: the server may run on another thread's loop (``in_thread``),
    and an ``asyncio.Event`` may only be set and awaited on one loop.
    """

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._flag.is_set()

    def set(self) -> None:
        with self._lock:
            self._flag.set()
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # that waiter's loop is already closed
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    async def wait(self, timeout: float | None) -> bool:
        """True once set; False if ``timeout`` seconds pass first."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._flag.is_set():
                return True
            self._waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return self._flag.is_set()

    def wait_sync(self, timeout: float | None) -> bool:
        return self._flag.wait(timeout)


def recording(name: str) -> list[Json]:
    """The ``data:`` payloads ``recordings/<name>.jsonl`` holds, in order."""
    lines = (RECORDINGS / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def recorded_text(name: str, field: str = "content") -> str:
    """The content (or the ``field``: "refusal") a recording streams, joined."""
    return "".join(
        choice["delta"].get(field) or ""
        for chunk in recording(name)
        for choice in chunk.get("choices") or []
    )


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _require(flag: bool, what: str, timeout: float) -> None:
    if not flag:
        raise TimeoutError(f"{what} did not happen within {timeout} s")


class _ClientGone(Exception):
    """The client closed the connection (or it broke) while we were answering."""


class _Refusal(Exception):
    """A request we cannot read; answered with ``status`` and then the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Input:
    """Bytes received on one connection, buffered so a watcher can read ahead for EOF while
    a response streams without losing anything the client sends meanwhile."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buffer = bytearray()
        self.eof = False

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = await self._reader.read(_READ_SIZE)
        except OSError:  # a reset is a close too
            data = b""
        if not data:
            self.eof = True
            return False
        self._buffer += data
        return True

    async def read_head(self) -> bytes | None:
        """The request line and headers; None if the client closed before sending them all."""
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self._buffer[:end])
                del self._buffer[: end + 4]
                return head.lstrip(b"\r\n")
            if len(self._buffer) > _MAX_HEAD:
                raise _Refusal(431, "The request head is too large.")
            if not await self._fill():
                return None

    async def read_exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not await self._fill():
                return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def discard_until_eof(self) -> None:
        while await self._fill():
            self._buffer.clear()

    async def wait_eof(self) -> bool:
        """Reads ahead until the client closes (True); gives up (False) past a sane amount."""
        while len(self._buffer) <= _MAX_HEAD + _MAX_BODY:
            if not await self._fill():
                return True
        return False


class _Connection:
    """One client connection; its records share it, so each learns when and by whom it closed."""

    def __init__(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.number = number
        self.input = _Input(reader)
        self.writer = writer
        # drain() then waits until asyncio holds none of our bytes, so a token's write time
        # is when it reached the kernel, not when it joined a 64 KiB user-space backlog.
        writer.transport.set_write_buffer_limits(high=0)
        self.closed_at: float | None = None
        self.closed_by: Closer | None = None
        self.closed = _Signal()

    def mark_closed(self, by: Closer) -> None:
        if self.closed_by is None:
            self.closed_at = time.perf_counter()
            self.closed_by = by
            self.closed.set()

    async def write(self, data: bytes) -> None:
        if self.closed_by is not None:
            raise _ClientGone
        try:
            self.writer.write(data)
            await self.writer.drain()
        except OSError as exc:
            self.mark_closed("client")
            raise _ClientGone from exc

    async def pause_until(self, deadline: float) -> None:
        """Waits until loop time ``deadline``, but raises as soon as the client leaves."""
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0:
            await self.closed.wait(delay)
        if self.closed_by is not None:
            raise _ClientGone

    async def linger(self, seconds: float = 1.0) -> None:
        """Half-closes, then discards what the client still sends for a while: closing with
        unread bytes would reset the connection and could destroy our answer in flight."""
        with contextlib.suppress(OSError):
            self.writer.write_eof()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.input.discard_until_eof(), seconds)

    async def watch(self) -> None:
        """Marks the connection closed the moment the client's side reaches EOF."""
        if await self.input.wait_eof():
            self.mark_closed("client")


class RequestRecord:
    """What the server received and did for one request.

    Attributes change on the server's loop; read them from elsewhere after ``wait_finished``
    (or ``wait_closed``). Times are ``time.perf_counter()`` values.
    """

    def __init__(
        self,
        *,
        method: str,
        path: str,
        headers: dict[str, str],
        raw_body: bytes,
        connection: _Connection,
    ) -> None:
        route = _ROUTE.fullmatch(path.partition("?")[0])
        self.method = method
        self.path = path
        self.scenario = route["scenario"] if route else ""
        self.headers = headers
        """Header names are lower-case; repeated headers are joined with ", "."""
        self.raw_body = raw_body
        self.body: Any = _parse_json(raw_body)
        """The parsed JSON body, or None if it was not JSON."""
        self.connection_id = connection.number
        self.request_id = "req_" + secrets.token_hex(16)
        self.received_at = time.perf_counter()
        self.status: int | None = None
        self.token_times: list[float] = []
        """When each content token was written and drained; the index is the token's."""
        self.outcome: Outcome | None = None
        self.finished_at: float | None = None
        self._connection = connection
        self._finished = _Signal()

    def __repr__(self) -> str:
        return (
            f"<RequestRecord {self.method} {self.path} status={self.status} "
            f"tokens={self.tokens_written} outcome={self.outcome} closed_by={self.closed_by}>"
        )

    @property
    def tokens_written(self) -> int:
        return len(self.token_times)

    @property
    def completed(self) -> bool:
        """The whole response was written."""
        return self.outcome == "completed"

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def closed_at(self) -> float | None:
        """When the connection that carried this request closed, if it has."""
        return self._connection.closed_at

    @property
    def closed_by(self) -> Closer | None:
        return self._connection.closed_by

    @property
    def client_closed(self) -> bool:
        return self._connection.closed_by == "client"

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Until this request's connection closes (see ``closed_by``), from any event loop."""
        _require(await self._connection.closed.wait(timeout), "the connection closing", timeout)

    def wait_closed_sync(self, timeout: float = 5.0) -> None:
        """``wait_closed`` for a thread that is not running an event loop."""
        _require(self._connection.closed.wait_sync(timeout), "the connection closing", timeout)

    async def wait_finished(self, timeout: float = 5.0) -> None:
        """Until the server stopped answering this request (see ``outcome``)."""
        _require(await self._finished.wait(timeout), "the response finishing", timeout)

    def wait_finished_sync(self, timeout: float = 5.0) -> None:
        _require(self._finished.wait_sync(timeout), "the response finishing", timeout)

    def _finish(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.finished_at = time.perf_counter()
            self._finished.set()


@dataclass(frozen=True)
class _Chunk:
    """One ``data:`` payload; ``after`` is its offset in seconds from the stream's start.
    ``raw``: bytes sent as the payload instead of ``data``, which no JSON encoder writes."""

    data: Json
    token: bool = False
    after: float | None = None
    raw: bytes | None = None


@dataclass(frozen=True)
class _Failure:
    status: int
    body: Json
    headers: tuple[tuple[str, str], ...] = ()


class Upstream:
    """The server: start it, point the SDK at ``base_url(scenario)``, read ``requests``."""

    slow_max_tokens: int = 500
    fast_max_tokens: int = 1_000_000

    def __init__(self, recordings: Path = RECORDINGS) -> None:
        self.recordings = recordings
        self.requests: list[RequestRecord] = []
        self.errors: list[BaseException] = []
        """Unexpected exceptions in the server; a test should expect none."""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections = 0
        self._lock = threading.RLock()
        self._arrivals: list[_Signal] = []
        self._stop_thread: Callable[[], object] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the upstream server is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base_url(self, scenario: str) -> str:
        """What to give the SDK as ``base_url`` for ``scenario``."""
        return f"{self.url}/{scenario}/v1"

    async def start(self) -> Upstream:
        self.loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stops listening and aborts every connection; on the loop that started it."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Upstream:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, *, startup_timeout: float = 10.0) -> Iterator[Upstream]:
        """The server on a thread with its own event loop, for callers that have no loop to
        share (a Django server in another process, a benchmark, sync code)."""
        upstream = cls()
        ready = threading.Event()
        failures: list[BaseException] = []
        thread = threading.Thread(
            target=upstream._run_thread, args=(ready, failures), name="llm-upstream", daemon=True
        )
        thread.start()
        if not ready.wait(startup_timeout):
            raise TimeoutError(f"the upstream server did not start within {startup_timeout} s")
        if failures:
            raise failures[0]
        try:
            yield upstream
        finally:
            if upstream._stop_thread is not None:
                upstream._stop_thread()
            thread.join(startup_timeout)
            if failures:
                raise failures[0]

    def _run_thread(self, ready: threading.Event, failures: list[BaseException]) -> None:
        async def main() -> None:
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(self._loop_problem)
            self._stop_thread = functools.partial(loop.call_soon_threadsafe, stopping.set)
            try:
                await self.start()
            finally:
                ready.set()
            try:
                await stopping.wait()
            finally:
                await self.close()

        try:
            asyncio.run(main())
        except BaseException as exc:
            failures.append(exc)
        finally:
            ready.set()

    def _loop_problem(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Keeps what the thread's loop would only log, so a test can see it in ``errors``."""
        loop.default_exception_handler(context)
        error = context.get("exception")
        self.errors.append(error or RuntimeError(context.get("message", "event loop problem")))

    async def wait_request(self, index: int = 0, timeout: float = 5.0) -> RequestRecord:
        """The ``index``-th request (0-based) once it has arrived, from any event loop."""
        _require(await self._arrival(index).wait(timeout), f"request #{index}", timeout)
        return self.requests[index]

    def wait_request_sync(self, index: int = 0, timeout: float = 5.0) -> RequestRecord:
        _require(self._arrival(index).wait_sync(timeout), f"request #{index}", timeout)
        return self.requests[index]

    def _arrival(self, index: int) -> _Signal:
        with self._lock:
            while len(self._arrivals) <= index:
                self._arrivals.append(_Signal())
            return self._arrivals[index]

    def _add(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)
            arrival = self._arrival(len(self.requests) - 1)
        arrival.set()

    # The connection loop.

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._server is None or task is None:  # accepted while closing
            writer.transport.abort()
            return
        self._tasks.add(task)
        self._connections += 1
        connection = _Connection(self._connections, reader, writer)
        aborted = False
        try:
            while await self._serve_one(connection):
                pass
        except asyncio.CancelledError:
            # Only close() cancels this task, and it must end quietly: asyncio's own callback
            # on it calls task.exception(), which raises for a cancelled task (Python 3.11).
            aborted = True
        except Exception as exc:
            self.errors.append(exc)
            aborted = True
        finally:
            self._tasks.discard(task)
            connection.mark_closed("server")  # unless the client was first
            if aborted:
                writer.transport.abort()
            else:
                writer.close()

    async def _serve_one(self, connection: _Connection) -> bool:
        """Reads and answers one request; whether the connection may carry another."""
        try:
            request = await _read_request(connection.input)
        except _Refusal as refusal:
            with contextlib.suppress(_ClientGone):
                body = _error(refusal.message, "invalid_request_error")
                await connection.write(_json_response(refusal.status, body, "", keep_alive=False))
                await connection.linger()
            return False
        if request is None:
            connection.mark_closed("client")
            return False
        method, path, headers, raw_body, keep_alive = request
        record = RequestRecord(
            method=method, path=path, headers=headers, raw_body=raw_body, connection=connection
        )
        self._add(record)
        try:
            await self._answer(connection, record, keep_alive)
        except _ClientGone:
            record._finish("client-closed")
            return False
        except BaseException:
            record._finish("server-closed")
            raise
        record._finish("completed")
        return keep_alive

    # Answers.

    async def _answer(self, connection: _Connection, record: RequestRecord, keep: bool) -> None:
        if record.scenario == "hang-up":
            connection.writer.transport.abort()
            connection.mark_closed("server")
            return
        body = record.body if isinstance(record.body, dict) else None
        failure = self._refuse(record, body)
        if failure is not None:
            record.status = failure.status
            response = _json_response(
                failure.status, failure.body, record.request_id, keep, failure.headers
            )
            await connection.write(response)
            return
        assert body is not None  # _refuse answers every request without a JSON object body
        chunks = self._chunks(record.scenario, body)
        assert chunks is not None  # likewise for unknown scenarios
        if body.get("stream") is True:
            record.status = 200
            await self._stream(connection, record, chunks, body, keep)
            return
        if _SLOW.fullmatch(record.scenario):
            failure = _Failure(
                400,
                _error(
                    "The slow scenario only streams; set stream to true.",
                    "invalid_request_error",
                    param="stream",
                ),
            )
            record.status = failure.status
            await connection.write(
                _json_response(failure.status, failure.body, record.request_id, keep)
            )
            return
        status, document = _complete(list(chunks))
        record.status = status
        await connection.write(_json_response(status, document, record.request_id, keep))

    def _refuse(self, record: RequestRecord, body: Json | None) -> _Failure | None:
        """The error answer for this request, if it gets one: a wrong route, a missing key,
        an error scenario, or a body that is not a chat-completions request."""
        if record.method != "POST" or not record.scenario:
            return _Failure(
                404,
                _error(
                    f"Invalid URL ({record.method} {record.path}); this test server answers "
                    "POST /<scenario>/v1/chat/completions (see tests/llm/upstream.py).",
                    "invalid_request_error",
                ),
            )
        authorization = record.headers.get("authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            return _Failure(
                401,
                _error(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error",
                ),
            )
        failure = _error_scenario(record.scenario, authorization[7:].strip(), body)
        if failure is not None:
            return failure
        if body is None:
            return _Failure(
                400,
                _error(
                    "We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                    "payload, but what was sent was not valid JSON.",
                    "invalid_request_error",
                ),
            )
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _Failure(
                400, _error("you must provide a model parameter", "invalid_request_error")
            )
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return _Failure(
                400,
                _error(
                    "Missing required parameter: 'messages'.",
                    "invalid_request_error",
                    param="messages",
                    code="missing_required_parameter",
                ),
            )
        if self._chunks(record.scenario, body) is None:
            return _Failure(
                404,
                _error(
                    f"Invalid URL (POST {record.path}): no scenario {record.scenario!r} "
                    "(see tests/llm/upstream.py).",
                    "invalid_request_error",
                ),
            )
        return None

    def _chunks(self, scenario: str, body: Json) -> Iterable[_Chunk] | None:
        """The payloads of ``scenario``'s stream, None if there is no such scenario."""
        model = str(body.get("model"))
        prompt_tokens = _estimate_prompt_tokens(body.get("messages"))
        if slow := _SLOW.fullmatch(scenario):
            count = min(int(slow["count"] or self.slow_max_tokens), self.slow_max_tokens)
            interval = int(slow["ms"]) / 1000
            return _synthetic(model, prompt_tokens, count, interval)
        if fast := _FAST.fullmatch(scenario):
            count = min(int(fast["count"]), self.fast_max_tokens)
            return _synthetic(model, prompt_tokens, count, None)
        if cut := _CUT.fullmatch(scenario):
            count = min(int(cut["count"]), self.fast_max_tokens)
            return _synthetic(model, prompt_tokens, count, None, finished=False)
        if partial := _PARTIAL_USAGE.fullmatch(scenario):
            *chunks, last = _synthetic(model, prompt_tokens, 3, None)
            missing = (f"{partial['missing']}_tokens", "total_tokens")
            usage = {key: value for key, value in last.data["usage"].items() if key not in missing}
            if partial["missing"] == "garbled":
                usage.update(prompt_tokens="many", completion_tokens=-1)
            return [*chunks, _Chunk({**last.data, "usage": usage})]
        unreadable = _UNREADABLE.fullmatch(scenario)
        if unreadable and unreadable["what"] in _UNREADABLE_DATA:
            chunks = list(_synthetic(model, prompt_tokens, 3, None))
            # After the role chunk and the three tokens.
            chunks.insert(4, _Chunk({}, raw=_UNREADABLE_DATA[unreadable["what"]]))
            return chunks
        if _RECORDING_NAME.fullmatch(scenario):
            path = self.recordings / f"{scenario}.jsonl"
            if path.is_file():
                return _replay(path)
        return None

    async def _stream(
        self,
        connection: _Connection,
        record: RequestRecord,
        chunks: Iterable[_Chunk],
        body: Json,
        keep: bool,
    ) -> None:
        options = body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        include_usage = options.get("include_usage") is True
        include_obfuscation = options.get("include_obfuscation") is not False
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("transfer-encoding", "chunked"),
        ]
        await connection.write(_head(200, record.request_id, keep, headers))
        watcher = asyncio.create_task(connection.watch())
        start = asyncio.get_running_loop().time()
        try:
            for chunk in chunks:
                if chunk.after is not None:
                    await connection.pause_until(start + chunk.after)
                if chunk.raw is not None:
                    await connection.write(_http_chunk(b"data: %s\n\n" % chunk.raw))
                    continue
                data = _shape(chunk.data, include_usage, include_obfuscation)
                if data is None:
                    continue
                await connection.write(_http_chunk(b"data: %s\n\n" % _payload(data)))
                if chunk.token:
                    record.token_times.append(time.perf_counter())
            cut = _CUT.fullmatch(record.scenario)
            if cut is None:
                await connection.write(_http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            elif cut["how"] == "cut-short":
                await connection.write(b"0\r\n\r\n")
            else:
                connection.writer.transport.abort()
                connection.mark_closed("server")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


# Reading requests.


async def _read_request(
    source: _Input,
) -> tuple[str, str, dict[str, str], bytes, bool] | None:
    """Method, target, headers, body and keep-alive of the next request; None at EOF."""
    head = await source.read_head()
    if head is None:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise _Refusal(400, f"Malformed request line {lines[0]!r}.")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _Refusal(400, f"Malformed header line {line!r}.")
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers:
        raise _Refusal(
            501,
            f"Transfer-Encoding {headers['transfer-encoding']!r} request bodies are not "
            "supported by this test server; send the body with a Content-Length.",
        )
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise _Refusal(400, f"Invalid Content-Length {length!r}.")
    if int(length) > _MAX_BODY:
        raise _Refusal(413, "The request body is too large.")
    body = await source.read_exactly(int(length))
    if body is None:
        return None
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return method, target, headers, body, keep_alive


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


# Writing responses.


def _head(
    status: int, request_id: str, keep_alive: bool, headers: Iterable[tuple[str, str]]
) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines.append(f"date: {email.utils.formatdate(usegmt=True)}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if request_id:
        lines.append(f"x-request-id: {request_id}")
    lines.append("openai-version: 2020-10-01")
    lines.append("openai-processing-ms: 1")
    lines.append(f"connection: {'keep-alive' if keep_alive else 'close'}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _json_response(
    status: int,
    body: Json,
    request_id: str,
    keep_alive: bool,
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    # OpenAI indents its JSON bodies: errors by four spaces, completions by two.
    data = (json.dumps(body, indent=4 if "error" in body else 2) + "\n").encode()
    fields = [
        ("content-type", "application/json; charset=utf-8"),
        ("content-length", str(len(data))),
        *headers,
    ]
    return _head(status, request_id, keep_alive, fields) + data


def _payload(data: Json) -> bytes:
    """``data`` as JSON in UTF-8; half a UTF-16 pair, which UTF-8 cannot carry, escaped
    (``"\\ud83d"``), as a server that cuts its text between the halves sends it."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(data, separators=(",", ":")).encode()


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _error(message: str, kind: str, *, param: str | None = None, code: str | None = None) -> Json:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error_scenario(scenario: str, api_key: str, body: Json | None) -> _Failure | None:
    if scenario == "unauthorized":
        shown = api_key if len(api_key) <= 8 else api_key[:3] + "*" * 8 + api_key[-4:]
        return _Failure(
            401,
            _error(
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                code="invalid_api_key",
            ),
        )
    if limited := _RATE_LIMITED.fullmatch(scenario):
        seconds = limited["seconds"] or "1"
        model = body.get("model") if body else None
        return _Failure(
            429,
            _error(
                f"Rate limit reached for {model or 'the model'} in organization org-upstream on "
                f"requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in "
                f"{seconds}s. Visit https://platform.openai.com/account/rate-limits to learn more.",
                "requests",
                code="rate_limit_exceeded",
            ),
            (
                ("retry-after", seconds),
                ("x-ratelimit-limit-requests", "3"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", f"{seconds}s"),
            ),
        )
    if scenario == "context-length":
        return _Failure(
            400,
            _error(
                "This model's maximum context length is 128000 tokens. However, your messages "
                "resulted in 131072 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                param="messages",
                code="context_length_exceeded",
            ),
        )
    if scenario == "server-error":
        return _Failure(
            500,
            _error(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            ),
        )
    return None


# Streams.


def _replay(path: Path) -> list[_Chunk]:
    chunks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            chunks.append(_Chunk(data, token=bool(_content(data))))
    return chunks


def _content(data: Json) -> str:
    """What the model wrote in ``data``: its content, or its refusal."""
    choices = data.get("choices") or [{}]
    delta = choices[0].get("delta") or {}
    return str(delta.get("content") or delta.get("refusal") or "")


def _synthetic(
    model: str, prompt_tokens: int, count: int, interval: float | None, *, finished: bool = True
) -> Iterator[_Chunk]:
    """``count`` tokens ``"t{i} "``, one every ``interval`` seconds (None: no pauses);
    then, if ``finished``, the finish_reason and the usage."""
    head: Json = {
        "id": "chatcmpl-" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(29)),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }

    def chunk(delta: Json, finish_reason: str | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**head, "choices": [choice], "usage": None}

    yield _Chunk(chunk({"role": "assistant", "content": "", "refusal": None}))
    for index in range(count):
        after = None if interval is None else interval * (index + 1)
        yield _Chunk(chunk({"content": f"t{index} "}), token=True, after=after)
    if finished:
        yield _Chunk(chunk({}, "stop"))
        yield _Chunk({**head, "choices": [], "usage": _usage(prompt_tokens, count)})


def _usage(prompt_tokens: int, completion_tokens: int) -> Json:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _estimate_prompt_tokens(messages: object) -> int:
    """About four characters a token, plus a few per message, as OpenAI's counts run."""
    if not isinstance(messages, list):
        return 0
    contents = [message.get("content") for message in messages if isinstance(message, dict)]
    characters = sum(len(json.dumps(content)) for content in contents)
    return characters // 4 + 4 * len(messages) + 3


def _shape(data: Json, include_usage: bool, include_obfuscation: bool) -> Json | None:
    """A recorded payload as this request gets it; None if the request would not get it."""
    if "error" in data:
        return data
    if not include_usage:
        if not data.get("choices") and data.get("usage"):
            return None
        data = {key: value for key, value in data.items() if key != "usage"}
    if not include_obfuscation:
        data = {key: value for key, value in data.items() if key != "obfuscation"}
    return data


def _complete(chunks: list[_Chunk]) -> tuple[int, Json]:
    """The non-streamed answer that matches a stream: its deltas folded into one message."""
    content: list[str] = []
    refusal: list[str] = []
    calls: dict[int, Json] = {}
    finish_reason = None
    usage = None
    for chunk in chunks:
        data = chunk.data
        if "error" in data:
            return 500, {"error": data["error"]}
        usage = data.get("usage") or usage
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            refusal.append(delta.get("refusal") or "")
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    call["index"],
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            finish_reason = choice.get("finish_reason") or finish_reason
    first = chunks[0].data
    message: Json = {
        "role": "assistant",
        "content": "".join(content) or None,
        "refusal": "".join(refusal) or None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    completion = {
        "id": first["id"],
        "object": "chat.completion",
        "created": first["created"],
        "model": first["model"],
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": usage,
        "service_tier": first.get("service_tier"),
        "system_fingerprint": first.get("system_fingerprint"),
    }
    return 200, completion
