"""Lifecycle races against real uvicorn and daphne servers: the promises of docs/lifecycle.md.

Per stream, whatever races with what: exactly one outcome; the generator's ``finally``
completes exactly once (an ``await`` inside it included); ``on_close(reason)`` runs
exactly once, after that ``finally``, with that outcome; the StreamLog row exists and is
closed with that outcome; an exception becomes an ``error`` event.

The server journals every stream (tests/lifecycle/): the generator's start, its
``finally`` entered and completed, each ``on_close`` entered and completed with its
outcome, the ``http.disconnect`` the application received and the request's end. A
test waits for the request's end (``/races/wait/``), then checks each stream's journal
and its StreamLog row in the server's SQLite file. Gates (``/races/open/``) hold a
stream where a race is to happen; where only timing can line two things up (a client
leaving as the stream ends by itself), many streams run at once with seeded jitter.

Each failing assertion says in how many of the N streams each promise broke: run with
``-s`` to see the counts of passing cases too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from django_sse._handover import DJANGO_WATCHES_DISCONNECTS
from django_sse.shutdown import GRACE
from tests.lifecycle import journal
from tests.servers import LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.e2e

APP = "tests.lifecycle.asgi:application"
# Server-side bound for /races/wait/: a stream still running this long is a failure.
SETTLE = 15.0
# A StreamLog write started by a worker thread whose await was cancelled still lands a
# moment after the request ended: rows not yet all closed are read again until they have
# not changed for ROW_QUIET seconds (at most ROW_GRACE).
ROW_QUIET = 0.2
ROW_GRACE = 2.0
# How long after SIGTERM a server may take to exit: the grace period plus a margin.
EXIT_BOUND = GRACE + 5.0
# How long a plain request may take while a stream is blocked in sync code.
PLAIN_BOUND = 5.0


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(kind: str) -> Iterator[LiveServer]:
    with LiveServer(kind, app=APP) as live:
        yield live


@pytest.fixture(scope="module")
def debug_server(kind: str) -> Iterator[LiveServer]:
    with LiveServer(kind, app=APP, env={"SSE_TEST_DEBUG": "1"}) as live:
        yield live


# --- clients ---------------------------------------------------------------------------


def new_tokens(n: int) -> list[str]:
    return [uuid.uuid4().hex[:16] for _ in range(n)]


def stream_url(server: LiveServer, token: str, **options: Any) -> str:
    return f"{server.url}/races/stream/?{urlencode({'t': token, **options})}"


async def get_json(server: LiveServer, path: str, params: Any, timeout: float = 30.0) -> Any:
    async with httpx.AsyncClient(base_url=server.url, timeout=timeout) as client:
        response = await client.get(path, params=params)
        response.raise_for_status()
        return response.json()


async def wait_marks(
    server: LiveServer, tokens: list[str], marks: str, timeout: float = SETTLE
) -> list[str]:
    """Wait in the server until each stream has one of ``marks``; those that have none."""
    params = [("mark", marks), ("timeout", str(timeout)), *(("t", t) for t in tokens)]
    answer = await get_json(server, "/races/wait/", params, timeout + 15)
    missing: list[str] = answer["missing"]
    return missing


async def open_gates(server: LiveServer, tokens: list[str], gate: str) -> None:
    await get_json(server, "/races/open/", [("gate", gate), *(("t", t) for t in tokens)])


@contextlib.asynccontextmanager
async def opened(
    server: LiveServer, tokens: list[str], **options: Any
) -> AsyncIterator[list[RawStream]]:
    """One stream per token, opened at once (headers read); closed on the way out."""
    streams = [RawStream(stream_url(server, token, **options)) for token in tokens]
    try:
        await asyncio.gather(*(stream.__aenter__() for stream in streams))
        yield streams
    finally:
        for stream in streams:
            stream.close()


async def until_event(stream: RawStream, name: str) -> bool:
    """Read until an event named ``name`` arrives; False if the stream ends first."""
    while True:
        events = await stream.next_events()
        if not events:
            return False
        if any(event.event == name for event in events):
            return True


async def first_events(streams: list[RawStream]) -> None:
    await asyncio.gather(*(stream.next_events() for stream in streams))


def rows_by_token(server: LiveServer, tokens: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The StreamLog rows of these streams, read from the server's SQLite file."""
    rows: dict[str, list[dict[str, Any]]] = {token: [] for token in tokens}
    with contextlib.closing(sqlite3.connect(server.database, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        for row in db.execute("SELECT * FROM django_sse_streamlog"):
            token = parse_qs(row["query_string"]).get("t", [""])[0]
            if token in rows:
                rows[token].append(dict(row))
    return rows


async def rows_exist(server: LiveServer, tokens: list[str], timeout: float = 10.0) -> list[str]:
    """Wait for the rows of open streams (inserted a second after they open): those missing."""
    deadline = time.monotonic() + timeout
    while True:
        rows = rows_by_token(server, tokens)
        missing = [token for token in tokens if not rows[token]]
        if not missing or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.05)


# --- checking the promises -------------------------------------------------------------


@dataclass
class Verdict:
    """Which streams broke which promise."""

    case: str
    tokens: list[str]
    broken: dict[str, list[str]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, promise: str, token: str) -> None:
        self.broken.setdefault(promise, []).append(token)

    @property
    def failing(self) -> set[str]:
        return {token for tokens in self.broken.values() for token in tokens}

    def report(self) -> str:
        n = len(self.tokens)
        lines = [f"{self.case}: {len(self.failing)}/{n} streams broke a promise"]
        for promise, tokens in self.broken.items():
            shown = ", ".join(tokens[:4]) + (", ..." if len(tokens) > 4 else "")
            lines.append(f"  {promise} in {len(tokens)}/{n} streams: [{shown}]")
        seen = ", ".join(f"{outcome} {count}" for outcome, count in sorted(self.outcomes.items()))
        lines.append(f"  outcomes: {seen}")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)

    def check(self) -> None:
        print(f"\n{self.report()}")
        if self.broken:
            pytest.fail(self.report(), pytrace=False)


async def verify(
    server: LiveServer,
    case: str,
    tokens: list[str],
    allowed: set[str],
    *,
    running: bool = True,
    stream_optional: bool = False,
    finally_after_last_event: bool = False,
) -> Verdict:
    """Check every promise for each stream, once the server has finished its requests.

    ``running``: the server still runs (wait for the requests to end, give late rows a
    moment); otherwise it has exited and its journal and database are final.
    ``stream_optional``: a request that never got as far as a stream (no generator, no
    on_close, no row) is fine; one that did must keep every promise.
    ``finally_after_last_event``: the generators return after their last event, as the
    clients leave; a ``finally`` the disconnect cancelled after that last event is the
    case docs/lifecycle.md leaves to the generator (it can shield its cleanup), so it is
    counted, not failed. Every other promise still holds.
    """
    verdict = Verdict(f"[{server.kind}] {case}", tokens)
    if running:
        for token in await wait_marks(server, tokens, "request_end"):
            verdict.add(f"request still running {SETTLE:.0f} s later", token)
        rows = await settled_rows(server, tokens, stream_optional)
    else:
        rows = rows_by_token(server, tokens)
    entries = journal.read(server.journal)
    for token in tokens:
        check_stream(
            verdict,
            token,
            entries.get(token, []),
            rows[token],
            allowed,
            stream_optional,
            finally_after_last_event,
        )
    # Where things went wrong: the failing streams' journals, most common first.
    sequences = Counter(
        " > ".join(
            entry["m"] + (f"({entry['o']})" if entry["o"] else "")
            for entry in entries.get(token, [])
            if entry["m"] not in ("request_start", "finally_thread", "on_close_thread")
        )
        for token in verdict.failing
    )
    verdict.notes += [f"{count}x journal: {seq}" for seq, count in sequences.most_common(4)]
    return verdict


async def settled_rows(
    server: LiveServer, tokens: list[str], stream_optional: bool
) -> dict[str, list[dict[str, Any]]]:
    rows = rows_by_token(server, tokens)
    deadline = time.monotonic() + ROW_GRACE
    quiet_since = time.monotonic()
    while True:
        closed = all(len(rows[t]) == 1 and rows[t][0]["outcome"] != "open" for t in tokens)
        now = time.monotonic()
        if closed or stream_optional or now - quiet_since >= ROW_QUIET or now > deadline:
            return rows
        await asyncio.sleep(0.05)
        again = rows_by_token(server, tokens)
        if again != rows:
            rows, quiet_since = again, time.monotonic()


def check_stream(
    verdict: Verdict,
    token: str,
    entries: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    allowed: set[str],
    stream_optional: bool,
    finally_after_last_event: bool = False,
) -> None:
    marks = [entry["m"] for entry in entries]
    started = "started" in marks
    closes = [entry for entry in entries if entry["m"] == "on_close"]
    if stream_optional and not (started or closes or rows):
        verdict.outcomes["no stream"] += 1
        return
    # A stream the engine ended before its generator ran (stopped before it started)
    # has no finally to run.
    if started:
        entered, done = marks.count("finally_entered"), marks.count("finally_done")
        if entered == 0:
            verdict.add("generator's finally never ran", token)
        elif done == 0 and finally_after_last_event and "disconnect" in marks:
            verdict.outcomes["finally cut after the last event (documented)"] += 1
        elif done == 0:
            verdict.add("generator's finally cut short (entered, never completed)", token)
        if entered > 1 or done > 1:
            verdict.add("generator's finally ran more than once", token)
    if not closes:
        verdict.add("on_close missing", token)
    elif len(closes) > 1:
        verdict.add("on_close ran more than once", token)
    if marks.count("on_close_done") < len(closes):
        verdict.add("on_close cut short (entered, never completed)", token)
    if closes and "finally_done" in marks and marks.index("on_close") < marks.index("finally_done"):
        verdict.add("on_close ran before the generator's finally completed", token)
    close_outcomes = {entry["o"] for entry in closes}
    if len(close_outcomes) > 1:
        verdict.add("on_close got different outcomes", token)
    if not rows:
        verdict.add("no StreamLog row", token)
    elif len(rows) > 1:
        verdict.add("more than one StreamLog row", token)
    row = rows[0] if rows else None
    if row is not None and (row["outcome"] == "open" or row["ended_at"] is None):
        verdict.add("StreamLog row left open", token)
    elif row is not None and closes and row["outcome"] not in close_outcomes:
        verdict.add("StreamLog outcome differs from on_close's", token)
    outcome = closes[0]["o"] if closes else (row["outcome"] if row else "none")
    verdict.outcomes[outcome] += 1
    if outcome not in allowed | {"none", "open"}:
        verdict.add(f"outcome not one of {sorted(allowed)}", token)


# --- 1. the client leaves right after the last event -----------------------------------


@pytest.mark.parametrize("length", ["short", "long"])
async def test_client_leaving_after_last_event_still_gets_on_close_and_closed_row(
    server: LiveServer, length: str
) -> None:
    """The client reads up to a final ``done`` event and closes at once, while the engine
    finishes the stream: writes its row (inserted at close for a stream under a second,
    updated for a longer one) and runs on_close, each with an await in it."""
    tokens = new_tokens(50)
    options: dict[str, Any] = {"n": 3, "done": 1}
    if length == "long":
        options["hold"] = "gate"
    async with opened(server, tokens, **options) as streams:
        if length == "long":
            await first_events(streams)
            missing = await rows_exist(server, tokens)
            assert not missing, f"rows of open streams never inserted: {len(missing)}"
            await open_gates(server, tokens, "hold")

        async def leave_after_done(stream: RawStream) -> bool:
            got_done = await until_event(stream, "done")
            stream.close()
            return got_done

        got = await asyncio.gather(*(leave_after_done(stream) for stream in streams))
    verdict = await verify(
        server,
        f"client leaves after the last event ({length})",
        tokens,
        {"completed", "client_disconnected"},
        finally_after_last_event=True,
    )
    for token, got_done in zip(tokens, got, strict=True):
        if not got_done:
            verdict.add("final done event not received", token)
    verdict.check()


# --- 2. max_duration runs out as the client leaves -------------------------------------


async def test_generator_finally_completes_when_max_duration_ends_as_client_leaves(
    server: LiveServer,
) -> None:
    """Timeout and disconnect at the same instant: each client leaves within 25 ms either
    side of its stream's deadline (seeded jitter), so the disconnect lands somewhere in
    the timeout's close path: the generator's finally, the row's insert, on_close."""
    tokens = new_tokens(50)
    max_duration = 0.4
    jitter = random.Random(f"timeout-vs-leave-{server.kind}")
    leave_at = [max_duration + jitter.uniform(-0.025, 0.025) for _ in tokens]
    async with opened(
        server, tokens, n=1, hold="forever", keep_alive=0, max_duration=max_duration
    ) as streams:

        async def leave(stream: RawStream, at: float) -> None:
            await stream.next_events()
            # The first event leaves as the stream starts, and its deadline with it.
            await asyncio.sleep(at)
            stream.close()

        await asyncio.gather(*(leave(s, at) for s, at in zip(streams, leave_at, strict=True)))
    verdict = await verify(
        server, "max_duration ends as the client leaves", tokens, {"timeout", "client_disconnected"}
    )
    verdict.check()


async def test_a_client_that_stops_reading_cannot_hold_its_stream_past_the_deadline(
    server: LiveServer,
) -> None:
    """The clients read the headers, then nothing: the server's writes wait for them (on
    uvicorn; daphne buffers everything, and its streams simply run to their end). Once
    the deadline stops a stream, a write its client does not take within
    CLEANUP_TIMEOUT is dropped with the connection: the stream closes, and with it its
    generator, on_close, its row and its limit slot."""
    tokens = new_tokens(3)
    async with opened(server, tokens, n=2000, size=20_000, keep_alive=0, max_duration=0.5):
        verdict = await verify(
            server, "a client that stops reading", tokens, {"timeout", "completed"}
        )
    verdict.check()


# --- 3. a stream blocked in sync code lends its busy request thread --------------------


async def test_stream_blocked_in_sync_code_does_not_lend_its_request_thread(kind: str) -> None:
    """The stream's generator waits in ``sync_to_async`` (a thread blocked on a gate)
    while keep-alives go out. Plain sync requests must still be served while that gate
    is closed: they may not be queued behind the blocked call on its thread.

    A server of its own: a thread let go goes back to the idle pool only while the pool
    has room (IDLE_REQUEST_THREADS), and the other tests' streams fill it."""
    token = new_tokens(1)
    plain_requests = 4
    with LiveServer(kind, app=APP) as server:
        async with opened(server, token, n=1, sync_gate=1, keep_alive=0.2, hold="forever") as (
            stream,
        ):
            assert [e.data for e in await stream.next_events()] == ["x" * 8]
            assert not await wait_marks(server, token, "sync_entered", timeout=10)
            # A keep-alive after the event: the engine went idle (and let its thread
            # go) while the sync call blocks.
            await stream.read_until(b"id: 0\n\n:\n")
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                plain = [
                    asyncio.ensure_future(client.get("/races/plain/"))
                    for _ in range(plain_requests)
                ]
                _, stalled = await asyncio.wait(plain, timeout=PLAIN_BOUND)
                await open_gates(server, token, "sync")
                answers = await asyncio.gather(*plain)
            assert all(answer.text == "plain" for answer in answers)
            assert await until_event(stream, "after"), "the stream's sync call never returned"
        verdict = await verify(
            server, "stream blocked in sync code", token, {"client_disconnected"}
        )
    if stalled:
        verdict.add("plain request stalled while the stream's sync call blocked", token[0])
        verdict.notes.append(
            f"plain sync requests not served within {PLAIN_BOUND:.0f} s while the stream's "
            f"sync call was blocked: {len(stalled)}/{plain_requests} (served once the gate "
            "opened)"
        )
    verdict.check()


# --- 4. an exception whose message holds a lone surrogate ------------------------------


@pytest.mark.parametrize("length", ["short", "long"])
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
async def test_surrogate_in_exception_message_gives_error_event_outcome_and_row(
    server: LiveServer, debug_server: LiveServer, debug: bool, length: str
) -> None:
    """``ValueError("bad \\udcff")`` (text decoded with surrogateescape): an ``error``
    event (with DEBUG, its message carries U+FFFD in place of the surrogate), outcome
    ``error`` everywhere, and a closed row whose ``error`` column holds U+FFFD."""
    live = debug_server if debug else server
    tokens = new_tokens(5)
    options: dict[str, Any] = {"n": 1, "raise": "surrogate"}
    if length == "long":
        options["hold"] = "gate"
    async with opened(live, tokens, **options) as streams:
        if length == "long":
            await first_events(streams)
            assert not await rows_exist(live, tokens)
            await open_gates(live, tokens, "hold")
        received = await asyncio.gather(*(stream.read_all() for stream in streams))
        raw = [bytes(stream.raw) for stream in streams]
    case = f"surrogate in the exception ({'DEBUG' if debug else 'no DEBUG'}, {length})"
    verdict = await verify(live, case, tokens, {"error"})
    rows = rows_by_token(live, tokens)
    for token, events, body in zip(tokens, received, raw, strict=True):
        errors = [event for event in events if event.event == "error"]
        if not errors:
            verdict.add("no error event on the wire", token)
        elif debug and "\ufffd" not in json.loads(errors[0].data)["message"]:
            verdict.add("DEBUG error message lacks U+FFFD", token)
        if b"\\udcff" in body or b"\xed\xb3\xbf" in body:
            verdict.add("the lone surrogate reached the wire", token)
        row = rows[token][0] if rows[token] else None
        if row is not None and row["outcome"] != "open" and "\ufffd" not in row["error"]:
            verdict.add("row's error column lacks U+FFFD", token)
    verdict.check()


# --- 5. a stream opened during the shutdown grace period -------------------------------


async def test_stream_opened_during_shutdown_grace_is_refused_or_stopped(kind: str) -> None:
    """SIGTERM while a first stream's finally awaits a gate (slow cleanup); a stream
    opened then must be refused (503 with Retry-After, before any byte) or stopped at
    once with ``shutdown``; the server exits within the grace period plus a margin,
    with every row closed."""
    slow, late = new_tokens(2)
    with LiveServer(kind, app=APP) as server:
        assert server.process is not None
        async with opened(server, [slow], n=1, hold="forever", keep_alive=0, finally_gate=1) as (
            first,
        ):
            await first.next_events()
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert not await wait_marks(server, [slow], "finally_entered", timeout=10)
            second = RawStream(stream_url(server, late, n=1, hold="forever", keep_alive=0))
            reading: asyncio.Future[Any] | None = None
            try:
                with contextlib.suppress(OSError):  # not even let in: refused too
                    await second.__aenter__()
                    reading = asyncio.ensure_future(second.read_all())
                try:
                    await open_gates(server, [slow], "finally")
                except httpx.HTTPError as exc:
                    released = f"could not open the first stream's gate ({exc!r})"
                else:
                    released = "first stream's gate opened"
                exit_code = await asyncio.to_thread(wait_exit, server, signalled + EXIT_BOUND)
                exited_after = time.monotonic() - signalled
                if exit_code is None:
                    server.process.kill()
                    server.process.wait()
                if reading is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(reading, 10)
            finally:
                second.close()
        refused = second.status in (0, 503)
        verdict = await verify(
            server,
            "stream opened during the shutdown grace period",
            [slow, late],
            {"shutdown"},
            running=False,
            stream_optional=refused,
        )
    if second.status == 503 and "retry-after" not in second.response_headers:
        verdict.add("503 without Retry-After", late)
    if second.status not in (0, 200, 503):
        verdict.add(f"late stream answered {second.status}", late)
    if exit_code is None:
        verdict.add(f"server still running {EXIT_BOUND:.0f} s after SIGTERM (killed)", late)
    verdict.notes.append(
        f"late stream: HTTP {second.status or 'connection refused'}, {len(second.raw)} body "
        f"bytes; {released}; server {'exited' if exit_code is not None else 'killed'} "
        f"{exited_after:.1f} s after SIGTERM"
    )
    verdict.check()


def wait_exit(server: LiveServer, deadline: float) -> int | None:
    assert server.process is not None
    with contextlib.suppress(Exception):
        return server.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    return None


# --- 6. a CancelledError raised by the source itself -----------------------------------


async def test_cancelled_error_raised_by_source_is_an_error(server: LiveServer) -> None:
    """The source awaited a future that something else cancelled: that is the source
    failing, not the server shutting down: outcome ``error``, an ``error`` event, and a
    log line naming the CancelledError."""
    tokens = new_tokens(5)
    logged_before = len(server.output)
    async with opened(server, tokens, n=1, **{"raise": "cancelled"}) as streams:
        received = await asyncio.gather(*(stream.read_all() for stream in streams))
    verdict = await verify(server, "CancelledError raised by the source", tokens, {"error"})
    for token, events in zip(tokens, received, strict=True):
        if not any(event.event == "error" for event in events):
            verdict.add("no error event on the wire", token)
    # The server's log reaches us through a pipe: give it a moment.
    deadline = time.monotonic() + 5
    while True:
        logged = [line for line in server.output[logged_before:] if "CancelledError" in line]
        unnamed = [token for token in tokens if not any(token in line for line in logged)]
        # The exception's message names the stream; a log line without it still counts,
        # one per stream.
        if len(logged) >= len(tokens) and not unnamed:
            break
        if time.monotonic() > deadline:
            if len(logged) < len(tokens):
                for token in unnamed:
                    verdict.add("no log line naming the CancelledError", token)
            break
        await asyncio.sleep(0.05)
    verdict.check()


# --- neighbours: the client leaves at other points of the close path -------------------


@pytest.mark.parametrize("moment", ["waiting", "returning"])
async def test_disconnect_before_headers_leaves_no_half_stream(
    server: LiveServer, moment: str
) -> None:
    """The client sends its request and leaves before the response starts: while
    has_permission waits (``waiting``: the server sees the disconnect before the gate
    opens), or as it returns (``returning``: the clients leave 0-30 ms after the request
    that opens the gate was sent, some before the response starts, some after). No
    stream comes of it, or one that keeps every promise."""
    tokens = new_tokens(10 if moment == "waiting" else 30)
    writers = []
    for token in tokens:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        query = urlencode({"t": token, "perm_gate": 1, "hold": "forever"})
        writer.write(f"GET /races/stream/?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        writers.append(writer)
    assert not await wait_marks(server, tokens, "permission_entered", timeout=10)
    if moment == "waiting":
        for writer in writers:
            writer.close()
        if DJANGO_WATCHES_DISCONNECTS:
            assert not await wait_marks(server, tokens, "disconnect,request_end", timeout=10)
        # Django 4.2 does not listen while the view runs: its streams start when the gate
        # opens, and notice the client has gone as they do.
        await open_gates(server, tokens, "perm")
    else:
        jitter = random.Random(f"before-headers-{server.kind}")
        # The request that opens the gates goes over a connection opened beforehand, so
        # that it reaches the server as the clients leave.
        opener_reader, opener = await asyncio.open_connection("127.0.0.1", server.port)
        query = urlencode([("gate", "perm"), *(("t", t) for t in tokens)])
        opener.write(f"GET /races/open/?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

        async def leave(writer: asyncio.StreamWriter, after: float) -> None:
            await asyncio.sleep(after)
            writer.close()

        await asyncio.gather(*(leave(writer, jitter.uniform(0, 0.03)) for writer in writers))
        await asyncio.wait_for(opener_reader.readuntil(b"\r\n\r\n"), 10)
        opener.close()
    verdict = await verify(
        server,
        f"disconnect before headers ({moment})",
        tokens,
        {"client_disconnected"},
        stream_optional=True,
    )
    verdict.check()


async def test_disconnect_mid_event_keeps_every_promise(server: LiveServer) -> None:
    """Events of 1 MB that the client does not read: it leaves after the first bytes,
    while the server is still writing the first event."""
    tokens = new_tokens(20)
    async with opened(server, tokens, n=3, size=1_000_000, hold="forever") as streams:
        await asyncio.gather(*(stream.read_body_chunk() for stream in streams))
        for stream in streams:
            stream.close()
    verdict = await verify(server, "disconnect mid-event", tokens, {"client_disconnected"})
    verdict.check()


async def test_disconnect_during_keep_alive_keeps_every_promise(server: LiveServer) -> None:
    """Keep-alives every 20 ms; each client leaves at a random point of 0-80 ms."""
    tokens = new_tokens(40)
    jitter = random.Random(f"keep-alive-{server.kind}")
    async with opened(server, tokens, n=1, hold="forever", keep_alive=0.02) as streams:
        await first_events(streams)

        async def leave(stream: RawStream, after: float) -> None:
            await asyncio.sleep(after)
            stream.close()

        await asyncio.gather(*(leave(s, jitter.uniform(0, 0.08)) for s in streams))
    verdict = await verify(server, "disconnect during keep-alives", tokens, {"client_disconnected"})
    verdict.check()


@pytest.mark.parametrize("where", ["finally", "close"])
async def test_disconnect_during_cleanup_lets_it_complete_with_the_decided_outcome(
    server: LiveServer, where: str
) -> None:
    """The stream timed out (outcome decided); its generator's finally (``finally``) or
    its on_close (``close``) waits for a gate. The client leaves, the server receives
    the disconnect, then the gate opens: the cleanup must complete, on_close run once
    with ``timeout``, the row be closed with ``timeout``."""
    tokens = new_tokens(10)
    mark = "finally_entered" if where == "finally" else "on_close"
    async with opened(
        server, tokens, n=1, hold="forever", keep_alive=0, max_duration=0.2, **{f"{where}_gate": 1}
    ) as streams:
        await first_events(streams)
        assert not await wait_marks(server, tokens, mark, timeout=10)
        for stream in streams:
            stream.close()
    # Nothing listens for a disconnect once the stream has ended by itself: django_sse's
    # application runs the stream after Django's handler, which no longer waits for one
    # (nor does Django 4.2's). The gates open as the clients leave.
    await open_gates(server, tokens, where)
    case = f"disconnect during the {'generator finally' if where == 'finally' else 'on_close'}"
    verdict = await verify(server, case, tokens, {"timeout"})
    verdict.check()


async def test_disconnect_during_stream_log_write_keeps_row_and_on_close(
    server: LiveServer,
) -> None:
    """Short streams that complete at once; each client leaves 0-30 ms after the last
    event, spraying the close path (the row's insert, on_close)."""
    tokens = new_tokens(50)
    jitter = random.Random(f"log-write-{server.kind}")
    async with opened(server, tokens, n=1, done=1) as streams:

        async def leave(stream: RawStream, after: float) -> None:
            await until_event(stream, "done")
            await asyncio.sleep(after)
            stream.close()

        await asyncio.gather(*(leave(s, jitter.uniform(0, 0.03)) for s in streams))
    verdict = await verify(
        server,
        "disconnect during the StreamLog write",
        tokens,
        {"completed", "client_disconnected"},
    )
    verdict.check()


async def test_timeout_and_shutdown_at_the_same_instant_record_one_outcome(kind: str) -> None:
    """Each stream's max_duration is set so that its deadline falls within 30 ms either
    side of the SIGTERM (seeded jitter): one outcome, timeout or shutdown, everywhere;
    the server exits within the grace period plus a margin."""
    tokens = new_tokens(40)
    jitter = random.Random(f"timeout-vs-shutdown-{kind}")
    durations = [0.5 + jitter.uniform(-0.03, 0.03) for _ in tokens]
    with LiveServer(kind, app=APP) as server:
        assert server.process is not None
        streams = [
            RawStream(
                stream_url(
                    server,
                    token,
                    n=1,
                    hold="forever",
                    keep_alive=0,
                    max_duration=round(duration, 4),
                )
            )
            for token, duration in zip(tokens, durations, strict=True)
        ]
        try:
            await asyncio.gather(*(stream.__aenter__() for stream in streams))

            async def started(stream: RawStream) -> float:
                await stream.next_events()
                return time.monotonic()

            # Each deadline runs from about when the stream's first event arrives: the
            # signal goes at their median, so about half the streams time out first.
            starts = await asyncio.gather(*(started(stream) for stream in streams))
            deadlines = [start + d for start, d in zip(starts, durations, strict=True)]
            await asyncio.sleep(max(0.0, statistics.median(deadlines) - time.monotonic()))
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*(stream.read_all() for stream in streams)), EXIT_BOUND
                )
            exit_code = await asyncio.to_thread(wait_exit, server, signalled + EXIT_BOUND)
            if exit_code is None:
                server.process.kill()
                server.process.wait()
        finally:
            for stream in streams:
                stream.close()
        verdict = await verify(
            server,
            "timeout and shutdown at the same instant",
            tokens,
            {"timeout", "shutdown"},
            running=False,
        )
    if exit_code is None:
        verdict.add(f"server still running {EXIT_BOUND:.0f} s after SIGTERM (killed)", tokens[0])
    verdict.check()
