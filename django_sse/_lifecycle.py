"""The life of one stream around its engine: start it, relay its bytes, notice the client
leaving, and close it: the source's cleanup, then the observers, then ``on_close``.

Apart from SSEResponse so that a stream taken over from Django's handler keeps only
this alive while it is open: the response, its headers and its cookies (about 1 KiB,
bench/README.md) are dead once the headers are sent, and nothing here refers to them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from typing import Any, cast

from django_sse import _metrics, conf, shutdown
from django_sse._closing import run_to_end, settle
from django_sse._direct_write import write_body
from django_sse._engine import Engine
from django_sse._handover import DJANGO_WATCHES_DISCONNECTS, request_handover
from django_sse._request_channels import Receive, Send
from django_sse._request_threads import release as release_request_thread
from django_sse._resume import Follower
from django_sse.protocol import Event
from django_sse.stats import OnClose, Outcome, StreamObserver, StreamStats

__all__ = ["Lifecycle"]

logger = logging.getLogger("django_sse")


class Lifecycle:
    """One stream, from its start to its close; each SSEResponse has one."""

    # Slots: one of these lives as long as each open stream.
    __slots__ = (
        "_early_stop",
        "_keep_alive",
        "_max_duration",
        "_meter",
        "_name",
        "_observers",
        "_on_close",
        "_opening",
        "_receive",
        "_source",
        "_stream",
        "_watcher",
        "engine_served",
        "stats",
    )

    def __init__(
        self,
        source: AsyncIterator[Any],
        stats: StreamStats,
        opening: bytes,
        *,
        keep_alive: float,
        max_duration: float,
        on_close: OnClose | None,
        observers: Sequence[StreamObserver],
        name: str | None,
    ) -> None:
        self._source = source
        self.stats = stats
        self._opening = opening
        self._keep_alive = keep_alive
        self._max_duration = max_duration
        self._on_close = on_close
        self._observers = observers
        # The stream's view label in the metrics.
        self._name = name
        self._stream: Engine | None = None
        self._early_stop: Outcome | None = None
        # Whether Django iterates the engine itself, so that writing to the request's
        # ASGI send from outside the engine cannot jump ahead of anything.
        self.engine_served = False
        # The stream's meter and its disconnect watcher, between _start() and _end().
        self._meter: _metrics.StreamMeter | None = None
        self._watcher: Follower | None = None
        self._receive: Receive | None = None

    def stop(self, outcome: Outcome) -> None:
        if self._stream is None:
            self._early_stop = outcome
        else:
            self._stream.stop(outcome)

    def record_error(self, error: BaseException) -> None:
        if self._stream is not None:
            self._stream.conclude(Outcome.ERROR, error)

    def offer(self, event: Event) -> bool:
        return self._stream is not None and self._stream.offer(event)

    def offerer(self) -> Callable[[Event], bool]:
        """``offer``, or once the stream has started the engine's own: a broadcast
        subscription offers to it for every event, and this is one call less each."""
        return self.offer if self._stream is None else self._stream.offer

    async def serve(self, receive: Receive, send: Send, disconnected: bool) -> None:
        """The stream taken over from Django's handler (django_sse._handover): what
        Django would have done with ``run()``, plus watching for the disconnect."""
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
                    rest = write_body(send, ready)
                except BaseException:
                    self._interrupted(stream)
                    raise
                if rest is not None:
                    # Awaited through poll(), not here: a stop ends that wait, also for
                    # a client that no longer reads (Engine._drop()).
                    stream.writing(rest)
        except asyncio.CancelledError:
            self._interrupted(stream)
            raise
        finally:
            await self._end(stream)
        if not stream.dropped:
            await send({"type": "http.response.body"})

    async def run(self) -> AsyncIterator[bytes]:
        """What Django iterates when it serves the stream itself."""
        handover = request_handover.get()
        stream = self._start(
            handover.asgi_send if handover is not None and self.engine_served else None,
            None if handover is None or DJANGO_WATCHES_DISCONNECTS else handover.asgi_receive,
        )
        # Django's task, which writes each chunk; a stop ends its write if the client
        # no longer reads (Engine._drop()).
        stream.served_by(asyncio.current_task())
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
            try:
                observer.opened(self.stats)
            except Exception as error:
                # Every observer still hears of the open, and of the close: the stream
                # ends at once, as an error, through the close path like any other.
                logger.exception("%s failed as the stream opened", _described(observer))
                stream.conclude(Outcome.ERROR, error)
                stream.stop(Outcome.ERROR)
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
                await settle(partial(observer.closed, self.stats), timeout, _described(observer))
            if on_close is not None:
                await settle(lambda: on_close(outcome), timeout, "on_close")
        finally:
            # Last: a shutdown waits for this before letting the server stop.
            shutdown.unregister(stream)


def _described(observer: StreamObserver) -> str:
    return str(getattr(observer, "description", type(observer).__name__))
