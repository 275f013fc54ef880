"""SSEResponse: the public streaming response, and the life of one stream around its engine.

The response hands Django an async iterator of its own (``_run``). It starts the
engine (django_sse._engine) when Django starts iterating, passes on what the engine
has to send, and when the stream ends, for whatever reason, closes the source, tells
the observers (the stream log, a stream limit's slot) and runs ``on_close``, in that
order. It also registers the stream for shutdown and lets go of the request's sync
thread while streaming.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, cast

from django.http import StreamingHttpResponse

from django_sse import _metrics, conf, shutdown
from django_sse._closing import run_to_end, settle
from django_sse._engine import Engine
from django_sse._handover import DJANGO_WATCHES_DISCONNECTS, request_handover
from django_sse._request_channels import Receive, Send
from django_sse._request_threads import release as release_request_thread
from django_sse._resume import Follower
from django_sse.protocol import Event, opening
from django_sse.stats import OnClose, Outcome, StreamObserver, StreamStats

__all__ = ["WSGI_REFUSAL", "SSEResponse"]

logger = logging.getLogger("django_sse")

WSGI_REFUSAL = (
    "Server-Sent Events need an ASGI server: under WSGI, Django drains an async "
    "stream completely before sending its first byte, so an endless stream never "
    "arrives. Serve the project with an ASGI server such as daphne or uvicorn."
)


class SSEResponse(StreamingHttpResponse):
    """A ``text/event-stream`` response driven by an async iterable.

    The iterable yields :class:`~django_sse.Event`, ``str`` (data), JSON-able data
    or pre-encoded ``bytes``. Options left as ``None`` take the project defaults
    from ``settings.DJANGO_SSE``; a ``keep_alive`` or ``max_duration`` of 0 turns
    that feature off. ``name`` labels the stream in the Prometheus metrics (views pass
    their URL pattern's name; None counts it as "unnamed"). With ``status=204`` the
    response is empty and ``source`` never runs: the answer that makes every client
    stop reconnecting (see ``django_sse.FINISHED``).
    """

    def __init__(
        self,
        source: AsyncIterable[Any],
        *,
        keep_alive: float | None = None,
        retry: int | None = None,
        max_duration: float | None = None,
        on_close: OnClose | None = None,
        observer: StreamObserver | Sequence[StreamObserver] | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        name: str | None = None,
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
        self._observers: list[StreamObserver] = (
            []
            if observer is None
            else list(observer)
            if isinstance(observer, Sequence)
            else [observer]
        )
        # The stream's view label in the metrics: views pass their URL pattern's name.
        self._name = name
        self.stats = StreamStats()
        # Validates ``retry`` once, up front, rather than when the stream starts.
        self._opening = opening(self._retry)
        self._engine = _Run(self)
        super().__init__(self._engine, status=status, headers=headers)
        self["Content-Type"] = "text/event-stream; charset=utf-8"
        self["Cache-Control"] = "no-cache, no-transform"
        self["X-Accel-Buffering"] = "no"
        # GZipMiddleware leaves alone any response that names its encoding. Compressing
        # would buffer events inside the compressor and break keep-alives.
        self["Content-Encoding"] = "identity"
        self._stream: Engine | None = None
        self._early_stop: Outcome | None = None
        # Whether Django iterates the engine itself, so that writing to the request's
        # ASGI send from outside the engine cannot jump ahead of anything.
        self._engine_served = False
        # The stream's meter and its disconnect watcher, between _start() and _end().
        self._meter: _metrics.StreamMeter | None = None
        self._watcher: Follower | None = None
        self._receive: Receive | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        replaced = getattr(self, "_iterator", None) is not self._engine
        if replaced:
            # A middleware replaced streaming_content; honour its wrapper.
            return super().__aiter__()
        self._engine_served = True
        handover = request_handover.get()
        # A 204 has no stream to take over: Django sends its (empty) body as for any.
        if self.status_code != 204 and handover is not None and handover.take(self._serve):
            # The stream runs after Django's handler has finished (django_sse._handover).
            return _nothing()
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

    async def _serve(self, receive: Receive, send: Send, disconnected: bool) -> None:
        """The stream taken over from Django's handler (django_sse._handover): what
        Django would have done with ``_run()``, plus watching for the disconnect."""
        stream = self._start(send, receive)
        if disconnected:
            stream.stop(Outcome.CLIENT_DISCONNECTED)
        try:
            # stream.poll(), not next_chunk(): an idle stream waits here, in this frame.
            while (ready := stream.poll()) is not None:
                if not isinstance(ready, bytes):
                    await ready
                    continue
                try:
                    await send({"type": "http.response.body", "body": ready, "more_body": True})
                except BaseException:
                    self._interrupted(stream)
                    raise
        except asyncio.CancelledError:
            self._interrupted(stream)
            raise
        finally:
            await self._end(stream)
        await send({"type": "http.response.body"})

    async def _run(self) -> AsyncIterator[bytes]:
        """What Django iterates when it serves the stream itself."""
        if self.status_code == 204:
            return
        handover = request_handover.get()
        stream = self._start(
            handover.asgi_send if handover is not None and self._engine_served else None,
            None if handover is None or DJANGO_WATCHES_DISCONNECTS else handover.asgi_receive,
        )
        try:
            while (chunk := await stream.next_chunk()) is not None:
                yield chunk
        except (GeneratorExit, asyncio.CancelledError):
            # GeneratorExit: Django closed us while we were suspended at a yield (its
            # send() was cancelled). CancelledError: the disconnect came while we waited.
            self._interrupted(stream)
            raise
        finally:
            await self._end(stream)

    def _start(self, send: Send | None, receive: Receive | None) -> Engine:
        """Start the engine, and tell whoever wants to know that the stream opened."""
        release_request_thread()
        # First: METRICS = True without prometheus-client raises before anything is
        # registered that would need undoing.
        self._meter = _metrics.meter(self._name, self.stats)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_duration if self._max_duration else None
        stream = self._stream = Engine(
            self._source, self.stats, send, self._keep_alive, deadline, self._opening
        )
        if self._early_stop is not None:
            stream.stop(self._early_stop)
        if receive is not None:
            self._watch(receive)
        shutdown.register(stream)
        self.stats.started_at = time.time()
        for observer in self._observers:
            observer.opened(self.stats)
        return stream

    def _watch(self, receive: Receive) -> None:
        """Notice the client leaving, where Django does not: for a stream taken over
        from Django's handler, and on Django 4.2 (see django_sse.asgi).

        The wait is ``receive()`` itself, followed from its future's callbacks: no task
        and no coroutine of our own per idle stream.
        """
        self._receive = receive
        self._watcher = Follower(receive(), self._received)
        self._watcher.start()

    def _received(self, message: Mapping[str, Any]) -> None:
        # Followed only from _start(), which set both first.
        stream, receive = cast(Engine, self._stream), cast(Receive, self._receive)
        if message["type"] == "http.disconnect":
            stream.stop(Outcome.CLIENT_DISCONNECTED)
        else:
            self._watch(receive)

    def _interrupted(self, stream: Engine) -> None:
        stream.interrupted(
            Outcome.SHUTDOWN if shutdown.is_shutting_down() else Outcome.CLIENT_DISCONNECTED
        )

    async def _end(self, stream: Engine) -> None:
        # Only an engine bug leaves no reason by now; record it rather than none.
        stream.conclude(Outcome.ERROR)
        if self._watcher is not None:
            self._watcher.cancel()
        await run_to_end(self._close(stream))

    async def _close(self, stream: Engine) -> None:
        """The source's cleanup, then the stream log, then ``on_close``: each once, each
        within CLEANUP_TIMEOUT seconds, whatever cancels the response meanwhile."""
        timeout = float(conf.get("CLEANUP_TIMEOUT"))
        try:
            try:
                await stream.close(timeout)
            finally:
                self.stats.ended_at = time.time()
                # Counted before the slower steps: whoever waits for on_close finds it.
                if self._meter is not None:
                    self._meter.closed()
            outcome = self.stats.outcome or Outcome.ERROR
            on_close = self._on_close
            for observer in self._observers:
                await settle(
                    partial(observer.closed, self.stats),
                    timeout,
                    getattr(observer, "description", type(observer).__name__),
                )
            if on_close is not None:
                await settle(lambda: on_close(outcome), timeout, "on_close")
        finally:
            # Last: a shutdown waits for this before letting the server stop.
            shutdown.unregister(stream)


class _Run:
    """What Django is given to iterate: ``_run()``, begun only if Django iterates it.

    A stream taken over from Django's handler never is, and an idle stream then keeps no
    generator it does not need.
    """

    __slots__ = ("_response", "_run")

    def __init__(self, response: SSEResponse) -> None:
        self._response = response
        self._run: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> _Run:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        if self._run is None:
            self._run = self._response._run()
        return self._run.__anext__()

    async def aclose(self) -> None:
        if self._run is not None:
            await self._run.aclose()  # type: ignore[attr-defined]


async def _nothing() -> AsyncIterator[bytes]:
    """What Django iterates of a stream that took the handover: no bytes."""
    for _ in ():
        yield b""
