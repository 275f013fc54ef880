"""The stream engine: turns an async iterable into SSE bytes on Django's async response.

One stream runs as two parts. A pump task iterates the source and encodes what it
yields into a small bounded buffer; the response iterator (what Django's ASGI handler
consumes) waits on that buffer, the keep-alive timer, the maximum duration and stop
requests all at once. That split is what lets a disconnect be noticed while the source
is idle, and lets the engine, not the garbage collector, close the source: Django's
handler only closes the outermost iterator it holds (Django ticket 37066).

When django_sse.asgi made the request's ASGI ``send`` known and the stream is idle
(the response iterator waits with nothing to send), an event is written by the code
that has it rather than handed to the iterator's task: by the pump, for the first
event the source yields in a turn of the event loop, so that it leaves before the
pump goes back into the source for the next one; and by the offering code, for an
event offered from outside (a broadcast fan-out), since waking one task per stream
for each event is what fan-out to thousands of streams would otherwise spend its
time on. Events that are ready together leave in one write, so a fast source costs
one ``send()`` per batch rather than one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import types
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterator,
)
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse

from django_sse import conf, shutdown
from django_sse._request_threads import release as release_request_thread
from django_sse.asgi import Send, request_receive, request_send
from django_sse.protocol import KEEP_ALIVE, Event, encode

__all__ = ["Outcome", "SSEResponse", "StreamStats", "sse_response"]

logger = logging.getLogger("django_sse")

# How many encoded items the pump may run ahead of the network.
_BUFFER_ITEMS = 64
_NEVER = float("inf")

WSGI_REFUSAL = (
    "Server-Sent Events need an ASGI server: under WSGI, Django drains an async "
    "stream completely before sending its first byte, so an endless stream never "
    "arrives. Serve the project with an ASGI server such as daphne or uvicorn."
)


class Outcome(str, enum.Enum):
    """Why a stream ended. Exactly one is recorded per stream."""

    COMPLETED = "completed"
    CLIENT_DISCONNECTED = "client_disconnected"
    ERROR = "error"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    # Broadcast: the subscriber fell a whole queue behind, or lost access to a channel.
    SLOW_CONSUMER = "slow_consumer"
    REVOKED = "revoked"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class StreamStats:
    """What one stream did: ``SSEResponse.stats``, also handed to stream observers."""

    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    events: int = 0
    bytes: int = 0
    last_event_id: str | None = None
    outcome: Outcome | None = None
    error: BaseException | None = None
    # Filled in by streams that relay a language model's answer (django_sse.llm).
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Seconds from the request to the answer's first token.
    time_to_first_token: float | None = None


OnClose = Callable[[Outcome], Awaitable[None]]


class StreamObserver(Protocol):
    """Told when a stream starts and after it ended; e.g. the StreamLog tracker."""

    def opened(self, stats: StreamStats) -> None:
        """Must not block: schedule any I/O as a task."""

    async def closed(self, stats: StreamStats) -> None:
        """Runs after the source's cleanup and before ``on_close``."""


class SSEResponse(StreamingHttpResponse):
    """A ``text/event-stream`` response driven by an async iterable.

    The iterable yields :class:`~django_sse.Event`, ``str`` (data), JSON-able data
    or pre-encoded ``bytes``. Options left as ``None`` take the project defaults
    from ``settings.DJANGO_SSE``; a ``keep_alive`` or ``max_duration`` of 0 turns
    that feature off.
    """

    def __init__(
        self,
        source: AsyncIterable[Any],
        *,
        keep_alive: float | None = None,
        retry: int | None = None,
        max_duration: float | None = None,
        on_close: OnClose | None = None,
        observer: StreamObserver | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not hasattr(source, "__aiter__"):
            raise TypeError(
                f"SSEResponse needs an async iterable (e.g. an async generator), "
                f"not {type(source).__name__}"
            )
        self._source = source
        self._keep_alive = float(conf.get("KEEP_ALIVE") if keep_alive is None else keep_alive)
        self._retry = conf.get("RETRY") if retry is None else retry
        self._max_duration = conf.get("MAX_DURATION") if max_duration is None else max_duration
        self._on_close = on_close
        self._observer = observer
        self.stats = StreamStats()
        # Validates ``retry`` once, up front, rather than when the stream starts.
        self._opening = KEEP_ALIVE if self._retry is None else Event(retry=self._retry).encode()
        self._engine: AsyncIterator[bytes] = self._run()
        super().__init__(self._engine, status=status, headers=headers)
        self["Content-Type"] = "text/event-stream; charset=utf-8"
        self["Cache-Control"] = "no-cache, no-transform"
        self["X-Accel-Buffering"] = "no"
        # GZipMiddleware leaves alone any response that names its encoding. Compressing
        # would buffer events inside the compressor and break keep-alives.
        self["Content-Encoding"] = "identity"
        self._stream: _Stream | None = None
        self._early_stop: Outcome | None = None
        # Whether Django iterates the engine itself, so that writing to the request's
        # ASGI send from outside the engine cannot jump ahead of anything.
        self._engine_served = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        replaced = getattr(self, "_iterator", None) is not self._engine
        if replaced:
            # A middleware replaced streaming_content; honour its wrapper.
            return super().__aiter__()
        self._engine_served = True
        # Hand Django the engine itself, so the aclose() it does on disconnect reaches
        # the engine and through it the source.
        return self._engine

    def __iter__(self) -> Iterator[bytes]:
        logger.error(WSGI_REFUSAL)
        raise RuntimeError(WSGI_REFUSAL)

    def stop(self, outcome: Outcome | str = Outcome.SHUTDOWN) -> None:
        """End the stream from outside (shutdown, revoked access) with this outcome.

        Before the stream has started, it ends as soon as it starts: the source never
        runs and only the opening line (a comment, or ``retry``) is sent.
        """
        if self._stream is None:
            self._early_stop = Outcome(outcome)
        else:
            self._stream.stop(Outcome(outcome))

    def record_error(self, error: BaseException) -> None:
        """End the stream with outcome ``error`` once what it produced has been sent.

        For a source that reported a failure to its client itself (an error event in
        its own format) and should not get the engine's generic one.
        """
        if self._stream is not None:
            self._stream.conclude(Outcome.ERROR, error)

    def offer(self, event: Event) -> bool:
        """Send ``event`` as if the source had yielded it next; False if not taken.

        For a source whose events come from elsewhere (a broadcast subscription):
        handing them over here skips waking the source for each one. The caller must
        only offer while the source is waiting for its next event, so that this one
        follows everything the source yielded. Not taken when the stream has not
        started, is ending, or has a full buffer: then the source yields it instead.

        An event offered while the stream is idle is written to the client before this
        returns (see the module's docstring).
        """
        return self._stream is not None and self._stream.offer(event)

    async def _run(self) -> AsyncIterator[bytes]:
        release_request_thread()
        send = request_send.get() if self._engine_served else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_duration if self._max_duration else None
        stream = self._stream = _Stream(self._source, self.stats, send, self._keep_alive, deadline)
        if self._early_stop is not None:
            stream.stop(self._early_stop)
        watcher = _watch_for_disconnect(stream)
        shutdown.register(stream)
        self.stats.started_at = time.time()
        if self._observer is not None:
            self._observer.opened(self.stats)
        try:
            self.stats.bytes += len(self._opening)
            yield self._opening
            while True:
                chunk = await stream.next_chunk()
                if chunk is None:
                    break
                self.stats.bytes += len(chunk)
                if chunk is KEEP_ALIVE:
                    # Idle: let go of any thread a sync call in the source started.
                    release_request_thread()
                yield chunk
        except (GeneratorExit, asyncio.CancelledError):
            # GeneratorExit: Django closed us while we were suspended at a yield (its
            # send() was cancelled). CancelledError: the disconnect came while we waited.
            stream.conclude(
                Outcome.SHUTDOWN if shutdown.is_shutting_down() else Outcome.CLIENT_DISCONNECTED
            )
            raise
        finally:
            # Only an engine bug leaves no reason by now; record it rather than none.
            stream.conclude(Outcome.ERROR)
            try:
                if watcher is not None:
                    watcher.cancel()
                await stream.close()
                await self._closed()
            finally:
                # Last: a shutdown waits for this before letting the server stop.
                shutdown.unregister(stream)

    async def _closed(self) -> None:
        self.stats.ended_at = time.time()
        outcome = self.stats.outcome or Outcome.ERROR
        if self._observer is not None:
            await _guarded(self._observer.closed(self.stats), "The stream observer", outcome)
        if self._on_close is not None:
            await _guarded(self._on_close(outcome), "on_close", outcome)


async def _guarded(hook: Awaitable[None], name: str, outcome: Outcome) -> None:
    try:
        await hook
    except Exception:
        logger.exception("%s raised for a stream that ended with %s", name, outcome)


class _Stream:
    """The pump task and the buffer it fills; owned by exactly one SSEResponse."""

    # Slots: one of these lives as long as each open stream.
    __slots__ = (
        "_buffer",
        "_closing",
        "_deadline",
        "_finished",
        "_keep_alive",
        "_last_sent",
        "_loop",
        "_pump",
        "_pump_wrote",
        "_send",
        "_sending",
        "_source",
        "_space",
        "_stats",
        "_timer",
        "_timer_at",
        "_waiter",
    )

    def __init__(
        self,
        source: AsyncIterable[Any],
        stats: StreamStats,
        send: Send | None,
        keep_alive: float,
        deadline: float | None,
    ) -> None:
        self._source = source
        self._stats = stats
        self._keep_alive = keep_alive
        self._deadline = _NEVER if deadline is None else deadline
        self._buffer: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._finished = False
        self._closing = False
        # The request's ASGI send, for offered events (see offer()), and the rest of
        # such a write that had to wait for the client, as a task.
        self._send = send
        self._sending: asyncio.Future[None] | None = None
        # Whether the pump wrote an event itself in this turn of the event loop.
        self._pump_wrote = False
        loop = self._loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        # One timer per stream for keep-alives and the deadline (see _arm()).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = _NEVER
        self._pump = loop.create_task(self._fill())

    def stop(self, outcome: Outcome) -> None:
        self.conclude(outcome)
        self._closing = True
        self._wake()

    def shutdown(self) -> None:
        self.stop(Outcome.SHUTDOWN)

    def conclude(self, outcome: Outcome, error: BaseException | None = None) -> None:
        """Record why the stream ends; the first reason given wins."""
        if self._stats.outcome is None:
            self._stats.outcome = outcome
            self._stats.error = error

    async def next_chunk(self) -> bytes | None:
        """The next bytes to send: ready events, a keep-alive, or None at the end.

        Events already pulled from the source are always flushed before the end, so
        a stream that times out or is stopped loses nothing it had produced.
        """
        loop = self._loop
        while True:
            if self._sending is not None and not self._sending.done():
                # Nothing may overtake an offered event still being written. (How
                # that write ends is _written()'s business, not this wait's.)
                await asyncio.wait([self._sending])
            now = loop.time()
            if self._stats.outcome is None and now >= self._deadline:
                self.stop(Outcome.TIMEOUT)
            if self._buffer:
                chunk = b"".join(self._buffer)
                self._buffer.clear()
                _resolve(self._space)
                self._last_sent = now
                return chunk
            if self._stats.outcome is not None:
                return None
            if self._finished:
                self.conclude(Outcome.COMPLETED)
                return None
            if now >= self._keep_alive_at():
                self._last_sent = now
                return KEEP_ALIVE
            self._arm(min(self._keep_alive_at(), self._deadline))
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def offer(self, event: Event) -> bool:
        if self._closing or self._finished:
            return False
        chunk = event.encode()
        send = self._idle_send()
        if send is not None:
            self._send_now(send, chunk, event)
        elif len(self._buffer) < _BUFFER_ITEMS:
            self._take(chunk, event)
        else:
            return False
        return True

    def _idle_send(self) -> Send | None:
        """The request's ASGI send, if the engine waits with nothing to send.

        Then Django's handler waits for the engine, between two sends of its own, and a
        write from outside the engine's task cannot overtake anything.
        """
        waiter = self._waiter
        if waiter is None or waiter.done() or self._buffer or self._sending is not None:
            return None
        return self._send

    def _send_now(self, send: Send, chunk: bytes, item: Any) -> None:
        self._count(item)
        self._stats.bytes += len(chunk)
        self._last_sent = self._loop.time()
        self._write(send, chunk)

    def _write(self, send: Send, chunk: bytes) -> None:
        """Run the server's send() until it first has to wait; a task for the rest.

        A server's send() usually finishes without waiting (the bytes go to the
        socket's buffer), and running it here costs far less than a task per write.
        It waits when the client is not reading: then a task finishes it, as awaiting
        it would, and the engine sends nothing until it has.
        """
        try:
            sending = send({"type": "http.response.body", "body": chunk, "more_body": True})
            if type(sending) is not types.CoroutineType:
                rest: asyncio.Future[None] = asyncio.ensure_future(sending)
            else:
                rest = self._loop.create_task(_finish(sending, sending.send(None)))
        except StopIteration:
            return
        except Exception as exc:
            self._write_failed(exc)
            return
        self._sending = rest
        rest.add_done_callback(self._written)

    def _written(self, rest: asyncio.Future[None]) -> None:
        self._sending = None
        if not rest.cancelled() and rest.exception() is not None:
            self._write_failed(rest.exception())

    def _write_failed(self, exc: BaseException | None) -> None:
        logger.warning("Writing an event to the client failed", exc_info=exc)
        self.conclude(Outcome.ERROR, exc)
        self.stop(Outcome.ERROR)

    def _take(self, chunk: bytes, item: Any) -> None:
        self._buffer.append(chunk)
        self._count(item)
        self._wake()

    def _count(self, item: Any) -> None:
        """Count an event the stream took, sent now or buffered."""
        self._stats.events += 1
        if isinstance(item, Event) and item.id is not None:
            self._stats.last_event_id = item.id

    def _arm(self, when: float) -> None:
        """Make sure the timer fires by ``when``.

        A timer that fires early is harmless (next_chunk looks at the clock and waits
        again), so it is only moved earlier, never later: a busy stream does not
        reschedule a timer for every event, which matters with thousands of streams.
        """
        if when == _NEVER or self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._ring)

    def _keep_alive_at(self) -> float:
        return self._last_sent + self._keep_alive if self._keep_alive > 0 else _NEVER

    def _ring(self) -> None:
        self._timer = None
        self._timer_at = _NEVER
        due = min(self._keep_alive_at(), self._deadline)
        if self._waiter is not None and due > self._loop.time():
            # Events written by offer() moved the keep-alive on, so nothing is due yet:
            # the timer moves on by itself, without waking the engine's task. A busy
            # broadcast stream then costs no task wake-up per keep-alive interval.
            self._arm(due)
        else:
            self._wake()

    async def close(self) -> None:
        """Stop the pump and close the source, so its ``finally`` runs now."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._sending is not None:
            self._sending.cancel()
        if not self._pump.done():
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                logger.exception("Closing the stream's source raised")

    async def _fill(self) -> None:
        try:
            async for item in self._source:
                chunk = encode(item)
                send = None if self._pump_wrote else self._idle_send()
                if send is None:
                    self._take(chunk, item)
                else:
                    # Whatever else the source yields in this turn waits for the
                    # engine's task, and leaves with the rest in one batch.
                    self._pump_wrote = True
                    self._loop.call_soon(self._next_turn)
                    self._send_now(send, chunk, item)
                if self._closing:
                    return
                if len(self._buffer) >= _BUFFER_ITEMS:
                    self._space = asyncio.get_running_loop().create_future()
                    await self._space
        except asyncio.CancelledError:
            # Not by close(): the event loop is shutting down under the stream.
            if not self._closing:
                self.conclude(Outcome.SHUTDOWN)
            raise
        except Exception as exc:
            self._fail(exc)
        finally:
            self._finished = True
            self._wake()

    def _next_turn(self) -> None:
        self._pump_wrote = False

    def _fail(self, exc: BaseException) -> None:
        logger.error("Stream source raised", exc_info=exc)
        message = str(exc) if settings.DEBUG else "The stream failed on the server."
        self._buffer.append(Event(event="error", data={"message": message}).encode())
        self.conclude(Outcome.ERROR, exc)

    def _wake(self) -> None:
        _resolve(self._waiter)


async def _finish(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _resumed(coroutine, waiting_on)


@types.coroutine
def _resumed(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    """Go on with a coroutine that has been run by hand up to ``waiting_on``.

    Passes what it waits on up to the task and what the task sends or throws (the
    result, or a cancellation) back down, as ``await`` would have from the start.
    """
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coroutine.send(sent)
            except StopIteration:
                return


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _watch_for_disconnect(stream: _Stream) -> asyncio.Task[None] | None:
    """On Django 4.2, notice the client leaving (see django_sse.asgi)."""
    receive = request_receive.get()
    if receive is None:
        return None

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stream.stop(Outcome.CLIENT_DISCONNECTED)

    return asyncio.get_running_loop().create_task(watch())


def sse_response(
    source: AsyncIterable[Any],
    *,
    keep_alive: float | None = None,
    retry: int | None = None,
    max_duration: float | None = None,
    on_close: OnClose | None = None,
    request: HttpRequest | None = None,
    log: bool | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> SSEResponse:
    """Stream ``source`` as Server-Sent Events from a function-based async view.

    Pass the ``request`` to get a StreamLog row for the stream (unless ``log=False``
    or ``LOG_STREAMS`` is off).
    """
    observer = None
    if request is not None:
        from django_sse.tracking import tracker_for  # tracking imports this module

        observer = tracker_for(request, log, request.path)
    return SSEResponse(
        source,
        keep_alive=keep_alive,
        retry=retry,
        max_duration=max_duration,
        on_close=on_close,
        observer=observer,
        status=status,
        headers=headers,
    )
