"""SSEResponse: the public streaming response.

The response hands Django an async iterator of its own (``_run``), or, where it can,
takes the stream over from Django's handler (django_sse._handover). Either way the
stream's life, from the engine's start to its close, is its Lifecycle's
(django_sse._lifecycle); the response carries the headers and the public API.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

from django_sse import conf
from django_sse._handover import request_handover
from django_sse._lifecycle import Lifecycle
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
        keep_alive = float(
            conf.get("KEEP_ALIVE") if keep_alive is None else _seconds("keep_alive", keep_alive)
        )
        retry = conf.get("RETRY") if retry is None else retry
        max_duration = (
            conf.get("MAX_DURATION")
            if max_duration is None
            else _seconds("max_duration", max_duration)
        )
        self.stats = StreamStats()
        self._life = Lifecycle(
            # The iterator, not the iterable: it is what the engine runs, and closes.
            aiter(source),
            self.stats,
            # Validates ``retry`` once, up front, rather than when the stream starts.
            opening(retry),
            keep_alive=keep_alive,
            max_duration=max_duration,
            on_close=on_close,
            observers=(
                ()
                if observer is None
                else tuple(observer)
                if isinstance(observer, Sequence)
                else (observer,)
            ),
            # The stream's view label in the metrics: views pass their URL pattern's name.
            name=name,
        )
        self._engine = _Run(self)
        super().__init__(self._engine, status=status, headers=headers)
        self["Content-Type"] = "text/event-stream; charset=utf-8"
        self["Cache-Control"] = "no-cache, no-transform"
        self["X-Accel-Buffering"] = "no"
        # GZipMiddleware leaves alone any response that names its encoding. Compressing
        # would buffer events inside the compressor and break keep-alives.
        self["Content-Encoding"] = "identity"

    def __aiter__(self) -> AsyncIterator[bytes]:
        replaced = getattr(self, "_iterator", None) is not self._engine
        if replaced:
            # A middleware replaced streaming_content; honour its wrapper.
            return super().__aiter__()
        self._life.engine_served = True
        handover = request_handover.get()
        # A 204 has no stream to take over: Django sends its (empty) body as for any.
        if self.status_code != 204 and handover is not None and handover.take(self._life.serve):
            # The stream runs after Django's handler has finished (django_sse._handover),
            # keeping only its Lifecycle: this response is let go.
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
        self._life.stop(Outcome(outcome))

    def record_error(self, error: BaseException) -> None:
        """End the stream with outcome ``error`` once what it produced has been sent.

        For a source that reported a failure to its client itself (an error event in
        its own format) and should not get the engine's generic one.
        """
        self._life.record_error(error)

    def offer(self, event: Event) -> bool:
        """Send ``event`` as if the source had yielded it next; False if not taken.

        For a source whose events come from elsewhere (a broadcast subscription):
        handing them over here skips waking the source for each one. The caller must
        only offer while the source is waiting for its next event, so that this one
        follows everything the source yielded. Not taken when the stream has not
        started, is ending, or has a full buffer: then the source yields it instead.

        An event offered while the stream is idle is written to the client before this
        returns (see django_sse._engine).
        """
        return self._life.offer(event)

    def _run(self) -> AsyncIterator[bytes]:
        """What Django iterates when it serves the stream itself."""
        return _nothing() if self.status_code == 204 else self._life.run()


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


def _seconds(option: str, value: Any) -> float:
    """A ``keep_alive`` or ``max_duration`` given to the response (conf checks the
    settings'), refused now: once the headers are out, a string or a NaN would fail the
    stream with a traceback, and a negative time would end it at once."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{option} must be a number of seconds, 0 or more, not {value!r}")
    return value


async def _nothing() -> AsyncIterator[bytes]:
    """No bytes: what Django iterates of a stream taken over, or of a 204."""
    for _ in ():
        yield b""
