"""The per-connection write loop: the source's pump, the buffer, keep-alives, the deadline.

One stream runs as two parts. A pump task iterates the source and encodes what it
yields into a small bounded buffer; the response iterator (SSEResponse, what Django's
ASGI handler consumes) asks ``next_chunk()``, which waits on that buffer, the
keep-alive timer, the maximum duration and stop requests all at once. That split is
what lets a disconnect be noticed while the source is idle, and lets the engine, not
the garbage collector, close the source: Django's handler only closes the outermost
iterator it holds (Django ticket 37066).

When the request's ASGI ``send`` is known and the stream is idle (the response
iterator waits with nothing to send), an event is written by the code that has it
rather than handed to the iterator's task: by the pump, for the first event the source
yields in a turn of the event loop, so that it leaves before the pump goes back into
the source for the next one; and by the offering code, for an event offered from
outside (a broadcast fan-out), since waking one task per stream for each event is what
fan-out to thousands of streams would otherwise spend its time on. Events that are
ready together leave in one write, so a fast source costs one ``send()`` per batch
rather than one per event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from django_sse import _timers, conf
from django_sse._closing import settle
from django_sse._direct_write import write_body
from django_sse._pump import Pump
from django_sse._request_channels import Send
from django_sse._request_threads import release as release_request_thread
from django_sse._text import safe_text
from django_sse.protocol import KEEP_ALIVE, Event, encode
from django_sse.stats import Outcome, StreamStats

__all__ = ["Engine"]

logger = logging.getLogger("django_sse")

# How many encoded items the pump may run ahead of the network.
_BUFFER_ITEMS = 64
_NEVER = float("inf")


class Engine:
    """The pump task, the buffer it fills, and the timer; owned by one SSEResponse."""

    # Slots: one of these lives as long as each open stream.
    __slots__ = (
        "_buffer",
        "_closing",
        "_consumer",
        "_deadline",
        "_dropped",
        "_finished",
        "_give_up",
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
        "_tick",
        "_timer_at",
        "_waiter",
    )

    def __init__(
        self,
        source: AsyncIterator[Any],
        stats: StreamStats,
        send: Send | None,
        keep_alive: float,
        deadline: float | None,
        opening: bytes,
    ) -> None:
        self._source = source
        self._stats = stats
        self._keep_alive = keep_alive
        self._deadline = _NEVER if deadline is None else deadline
        # What the stream sends first (see protocol.opening()), ahead of any event.
        self._buffer: list[bytes] = [opening]
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
        # When the timer wheel wakes this stream for its keep-alive or deadline (see
        # _arm()), and the wheel's tick for that.
        self._tick: int | None = None
        self._timer_at = _NEVER
        # Once stopped, how long a client that takes no bytes may hold the stream (see
        # _drop()); the task that writes what poll() gives, where it is not the one
        # that waits on poll() (Django's, serving the stream itself).
        self._give_up: asyncio.TimerHandle | None = None
        self._dropped = False
        self._consumer: asyncio.Task[Any] | None = None
        self._pump = Pump(self._fill(), loop)
        # From the start: a stream that never waits idle (a flood, a write that waits)
        # still ends on time.
        self._arm(self._deadline)

    def stop(self, outcome: Outcome) -> None:
        """End the stream from outside, once what the source produced has been sent:
        within CLEANUP_TIMEOUT seconds, or without it (see _drop()). But for a slow
        consumer cut off from a broadcast: it is reading, however slowly, and gets
        everything it was sent before it resumes from history."""
        self.interrupted(outcome)
        self._closing = True
        if outcome is not Outcome.SLOW_CONSUMER and self._give_up is None and not self._dropped:
            timeout = float(conf.get("CLEANUP_TIMEOUT"))
            self._give_up = self._loop.call_later(timeout, self._drop)
        self._wake()

    def served_by(self, task: asyncio.Task[Any] | None) -> None:
        """Where Django writes what poll() gives: the task to cancel if its write of it
        never ends (see _drop())."""
        self._consumer = task

    def _drop(self) -> None:
        """A stopped stream whose client has not taken what was written for
        CLEANUP_TIMEOUT seconds (it stopped reading, and the server waits for it) ends
        without it: the write is dropped, and the connection with it. Otherwise such a
        client would keep the stream, its limit slot and a server's shutdown waiting
        for ever."""
        self._give_up = None
        self._dropped = True
        if self._sending is not None:
            self._sending.cancel()  # _written() wakes the stream's task
        elif self._waiter is not None and not self._waiter.done():
            self._wake()
        elif self._consumer is not None:
            # Django's task is in its own send() of our last bytes.
            self._consumer.cancel()

    @property
    def dropped(self) -> bool:
        """Whether the stream gave up on its client (see _drop()): nothing more may be
        sent, not even the end of the body, which would wait just the same."""
        return self._dropped

    def shutdown(self) -> None:
        self.stop(Outcome.SHUTDOWN)

    def interrupted(self, outcome: Outcome) -> None:
        """Record a reason that came from outside the source (a stop, the client leaving).

        A deadline that has passed by then came first, even if the engine's task has not
        woken up to it yet: the stream timed out.
        """
        if self._loop.time() >= self._deadline:
            self.conclude(Outcome.TIMEOUT)
        self.conclude(outcome)

    def conclude(self, outcome: Outcome, error: BaseException | None = None) -> None:
        """Record why the stream ends; the first reason given wins."""
        if self._stats.outcome is None:
            self._stats.outcome = outcome
            self._stats.error = error

    def poll(self) -> bytes | asyncio.Future[None] | None:
        """The next bytes to send: ready events or a keep-alive; None at the end; or, with
        nothing to send yet, a future to await before asking again.

        Events already pulled from the source are always flushed before the end, so
        a stream that times out or is stopped loses nothing it had produced. Not a
        coroutine: an idle stream's task then waits in its own frame, not in one more.
        """
        self._waiter = None
        now = self._loop.time()
        if self._stats.outcome is None and now >= self._deadline:
            self.stop(Outcome.TIMEOUT)
        if self._dropped:
            return None
        if self._sending is not None:
            # Nothing may overtake a write still waiting for the client; _written()
            # wakes us (how that write ended is its business, not this wait's).
            return self._wait()
        if self._buffer:
            chunk = b"".join(self._buffer)
            self._buffer.clear()
            _resolve(self._space)
            self._last_sent = now
            self._stats.bytes += len(chunk)
            return chunk
        if self._stats.outcome is not None:
            return None
        if self._finished:
            self.conclude(Outcome.COMPLETED)
            return None
        if now >= self._keep_alive_at():
            self._last_sent = now
            self._stats.bytes += len(KEEP_ALIVE)
            # Idle: let go of any thread a sync call in the source started.
            release_request_thread()
            return KEEP_ALIVE
        self._arm(min(self._keep_alive_at(), self._deadline))
        return self._wait()

    async def next_chunk(self) -> bytes | None:
        """``poll()`` until it has bytes to send or the stream ends."""
        while isinstance(ready := self.poll(), asyncio.Future):
            await ready
        return ready

    def _wait(self) -> asyncio.Future[None]:
        waiter = self._waiter = self._loop.create_future()
        return waiter

    def offer(self, event: Event) -> bool:
        """Send ``event`` from the caller if the stream is idle, else buffer it; False
        once the stream takes no more (closing, or its buffer full)."""
        if self._closing or self._finished or len(self._buffer) >= _BUFFER_ITEMS:
            return False
        self._put(event.encode(), event, self._send)
        return True

    def _put(self, chunk: bytes, item: Any, send: Send | None) -> bool:
        """Write ``chunk`` to ``send`` now if the engine waits with nothing to send, else
        buffer it for the engine's task; whether it was written.

        Only then may a write come from outside the engine's task: Django's handler
        waits for the engine, between two sends of its own, and nothing can be
        overtaken. A broadcast runs this for every subscriber of a channel in one go,
        so it is one frame, and reads no object it does not need: every call and
        every cache miss saved here is saved ten thousand times an event.
        """
        stats = self._stats
        stats.events += 1
        if isinstance(item, Event) and item.id is not None:
            stats.last_event_id = item.id
        waiter = self._waiter
        idle = waiter is not None and not waiter.done() and self._sending is None
        if send is None or not idle or self._buffer:
            self._buffer.append(chunk)
            self._wake()
            return False
        stats.bytes += len(chunk)
        self._last_sent = self._loop.time()
        self._write(send, chunk)
        return True

    def _write(self, send: Send, chunk: bytes) -> None:
        """Write now; the engine sends nothing else until a write that waits is done."""
        try:
            rest = write_body(send, chunk)
        except Exception as exc:
            self._write_failed(exc)
            return
        if rest is not None:
            self.writing(rest)

    def writing(self, rest: asyncio.Future[None]) -> None:
        """The rest of a write that waits for the client: poll() waits for it too."""
        self._sending = rest
        rest.add_done_callback(self._written)

    def _written(self, rest: asyncio.Future[None]) -> None:
        self._sending = None
        if not rest.cancelled() and rest.exception() is not None:
            self._write_failed(rest.exception())
        self._wake()

    def _write_failed(self, exc: BaseException | None) -> None:
        logger.warning("Writing an event to the client failed", exc_info=exc)
        self.conclude(Outcome.ERROR, exc)
        self.stop(Outcome.ERROR)

    def _arm(self, when: float) -> None:
        """Make sure the timer fires by ``when``.

        A timer that fires early is harmless (next_chunk looks at the clock and waits
        again), so it is only moved earlier, never later: a busy stream does not
        reschedule a timer for every event, which matters with thousands of streams.
        """
        if when == _NEVER or self._timer_at <= when:
            return
        self._disarm()
        self._timer_at = when
        self._tick = _timers.schedule(when, self)

    def _disarm(self) -> None:
        if self._tick is not None:
            _timers.cancel(self._loop, self._tick, self)
            self._tick = None

    def _keep_alive_at(self) -> float:
        return self._last_sent + self._keep_alive if self._keep_alive > 0 else _NEVER

    def ring(self) -> None:
        """The timer wheel's call: a keep-alive or the deadline may be due."""
        self._tick = None
        self._timer_at = _NEVER
        now = self._loop.time()
        if self._stats.outcome is None and now >= self._deadline:
            # Here, not in poll(): the task that polls may be in a write that waits.
            self.stop(Outcome.TIMEOUT)
            return
        due = min(self._keep_alive_at(), self._deadline)
        if self._waiter is not None and due > now:
            # Events written by offer() moved the keep-alive on, so nothing is due yet:
            # the timer moves on by itself, without waking the engine's task. A busy
            # broadcast stream then costs no task wake-up per keep-alive interval.
            self._arm(due)
        else:
            # The deadline stays armed while the task is busy (in Django's write).
            self._arm(self._deadline)
            self._wake()

    async def close(self, timeout: float) -> None:
        """Stop the pump and close the source, so its ``finally`` runs now.

        Each of the two may take ``timeout`` seconds before it is cancelled (see
        django_sse._closing): a pump cancelled while the source awaits runs the
        source's ``finally`` there; one suspended at a ``yield`` runs it in aclose().
        """
        self._closing = True
        self._disarm()
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None
        if self._sending is not None:
            self._sending.cancel()
        if not self._pump.done():
            self._pump.cancel()
            pump = self._pump
            await settle(lambda: pump, timeout, "The stream's source, cancelled,")
        aclose = getattr(self._source, "aclose", None)
        # An async generator that has run its finally (in the pump) has nothing to close.
        if aclose is not None and getattr(self._source, "ag_frame", True) is not None:
            await settle(aclose, timeout, "Closing the stream's source")

    async def _fill(self) -> None:
        try:
            async for item in self._source:
                if self._put(encode(item), item, None if self._pump_wrote else self._send):
                    # Whatever else the source yields in this turn waits for the
                    # engine's task, and leaves with the rest in one batch.
                    self._pump_wrote = True
                    self._loop.call_soon(self._next_turn)
                if self._closing:
                    return
                if len(self._buffer) >= _BUFFER_ITEMS:
                    self._space = asyncio.get_running_loop().create_future()
                    await self._space
        except asyncio.CancelledError as exc:
            if self._closing:
                raise
            if self._pump.cancel_requested:
                # Not by close(): the event loop is shutting down under the stream.
                self.conclude(Outcome.SHUTDOWN)
                raise
            # Nothing cancelled the pump: the source raised it itself, having awaited
            # something that another task cancelled. That is the source failing.
            self._fail(exc)
        except Exception as exc:
            self._fail(exc)
        finally:
            self._finished = True
            self._wake()

    def _next_turn(self) -> None:
        self._pump_wrote = False

    def _fail(self, exc: BaseException) -> None:
        self.conclude(Outcome.ERROR, exc)
        if isinstance(exc, asyncio.CancelledError):
            logger.error(
                "Stream source raised CancelledError, though nothing cancelled the stream: "
                "did it await something that another task cancelled?",
                exc_info=exc,
            )
        else:
            logger.error("Stream source raised", exc_info=exc)
        message = (
            safe_text(str(exc) or type(exc).__name__)
            if settings.DEBUG
            else "The stream failed on the server."
        )
        self._buffer.append(Event(event="error", data={"message": message}).encode())

    def _wake(self) -> None:
        _resolve(self._waiter)


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
