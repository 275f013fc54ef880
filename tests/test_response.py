"""The stream engine, driven in-process the way Django's ASGI handler drives it."""

from __future__ import annotations

import asyncio
import decimal
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.test import override_settings

from django_sse import Event, Outcome, SSEResponse, shutdown, sse_response
from django_sse._handover import Handover, request_handover
from django_sse.protocol import KEEP_ALIVE, EventParser
from django_sse.response import WSGI_REFUSAL
from django_sse.stats import StreamStats

LIMIT = 10.0  # seconds any single await in these tests may take before the test fails


class Recorder:
    """A source generator plus what happened to it."""

    def __init__(self) -> None:
        self.finally_ran = False
        self.outcomes: list[Outcome] = []
        self.proceed = asyncio.Event()

    async def on_close(self, reason: Outcome) -> None:
        self.outcomes.append(reason)

    async def wrap(self, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for item in items:
                yield item
        finally:
            self.finally_ran = True


async def items(*values: Any) -> AsyncIterator[Any]:
    for value in values:
        yield value


async def forever(first: Any = "first") -> AsyncIterator[Any]:
    yield first
    await asyncio.Event().wait()


def within(awaitable: Any) -> Any:
    return asyncio.wait_for(awaitable, LIMIT)


async def drain(response: SSEResponse) -> bytes:
    async def read() -> bytes:
        raw = b""
        async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
            async for chunk in content:
                raw += chunk
        return raw

    result: bytes = await within(read())
    return result


async def test_completed_stream_sends_every_item_and_closes_once() -> None:
    recorder = Recorder()
    source = recorder.wrap(items(Event(data="a", id="1"), "b", {"c": 1}, b"data: d\n\n"))
    response = sse_response(source, on_close=recorder.on_close, keep_alive=0)
    raw = await drain(response)
    events = EventParser().feed(raw)
    assert [(e.data, e.id) for e in events] == [
        ("a", "1"),
        ("b", "1"),
        ('{"c":1}', "1"),
        ("d", "1"),
    ]
    assert raw.startswith(KEEP_ALIVE)
    assert recorder.finally_ran
    assert recorder.outcomes == [Outcome.COMPLETED]
    assert response.stats.events == 4
    assert response.stats.bytes == len(raw)
    assert response.stats.last_event_id == "1"


class Observer:
    """A stream observer that notes what it hears; ``opened()`` raises if told to."""

    description = "The test's observer"

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.heard: list[str] = []

    def opened(self, stats: StreamStats) -> None:
        self.heard.append("opened")
        if self.fails:
            raise RuntimeError("no slot for this stream")

    async def closed(self, stats: StreamStats) -> None:
        self.heard.append(f"closed: {stats.outcome}")


@pytest.mark.parametrize("failing", [0, 1])
async def test_an_observer_failing_as_the_stream_opens_ends_it_as_an_error(
    failing: int, caplog: pytest.LogCaptureFixture
) -> None:
    observers = [Observer(fails=n == failing) for n in range(2)]
    recorder = Recorder()
    response = SSEResponse(
        recorder.wrap(forever()), on_close=recorder.on_close, observer=observers, keep_alive=0
    )
    raw = await drain(response)
    assert raw == KEEP_ALIVE  # the opening line only: the source never ran
    assert recorder.outcomes == [Outcome.ERROR]
    assert isinstance(response.stats.error, RuntimeError)
    assert [o.heard for o in observers] == [["opened", "closed: error"]] * 2
    assert "The test's observer failed as the stream opened" in caplog.text
    assert not any(shutdown._open.values())


async def test_retry_is_sent_first() -> None:
    raw = await drain(sse_response(items("x"), retry=1500))
    assert raw.startswith(b"retry: 1500\n\n")
    assert EventParser().feed(raw)[0].data == "x"


def test_invalid_retry_is_rejected_up_front() -> None:
    with pytest.raises(ValueError, match="retry"):
        sse_response(items(), retry=-5)


@pytest.mark.parametrize("option", ["keep_alive", "max_duration"])
@pytest.mark.parametrize("value", ["3600", -1, float("nan"), True, decimal.Decimal("5")])
def test_invalid_times_are_rejected_up_front(option: str, value: Any) -> None:
    """A string from an environment variable failed the stream after its headers; a
    negative max_duration ended it at once, as a timeout."""
    with pytest.raises(ValueError, match=rf"^{option} must be a number of seconds"):
        sse_response(items(), **{option: value})


def test_a_sync_iterable_is_rejected_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="async iterable"):
        sse_response(["a", "b"])  # type: ignore[arg-type]


async def test_ready_events_leave_in_one_write() -> None:
    response = sse_response(items(*[str(n) for n in range(50)]), keep_alive=0)
    chunks = []
    async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
        async for chunk in content:
            chunks.append(chunk)
    events = EventParser().feed(b"".join(chunks))
    assert [e.data for e in events] == [str(n) for n in range(50)]
    assert len(chunks) < 50


async def test_keep_alive_is_a_comment_sent_only_while_idle() -> None:
    response = sse_response(forever(), keep_alive=0.01)
    async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
        assert await within(anext(content)) == KEEP_ALIVE  # the opening comment
        assert await within(anext(content)) == b"data: first\n\n"
        assert await within(anext(content)) == KEEP_ALIVE
        assert await within(anext(content)) == KEEP_ALIVE


@pytest.mark.parametrize(
    "options", [{"keep_alive": 1e308}, {"keep_alive": 0, "max_duration": 1e308}]
)
async def test_a_time_too_far_to_count_in_ticks_is_no_time_at_all(options: dict[str, Any]) -> None:
    """1e308 seconds overflowed the timer wheel's tick number on the stream's first wait."""
    response = sse_response(items("a", "b"), **options)
    async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
        chunks = [chunk async for chunk in content]
    assert [e.data for e in EventParser().feed(b"".join(chunks))] == ["a", "b"]
    assert response.stats.outcome == Outcome.COMPLETED


async def test_closing_while_suspended_at_yield_runs_cleanup() -> None:
    """What Django does when the client leaves while send() is pending."""
    recorder = Recorder()

    async def endless() -> AsyncIterator[str]:
        while True:
            yield "x" * 100

    response = sse_response(recorder.wrap(endless()), on_close=recorder.on_close)
    content = aiter(response)
    await within(anext(content))
    await within(anext(content))
    await content.aclose()  # type: ignore[attr-defined]
    assert recorder.finally_ran
    assert recorder.outcomes == [Outcome.CLIENT_DISCONNECTED]


async def test_an_iterable_sources_iterator_is_closed_before_on_close() -> None:
    """A source whose __aiter__() gives a new generator, not itself: that generator is
    what the engine runs and must close, not leave to the garbage collector."""
    order: list[str] = []

    class Numbers:
        def __aiter__(self) -> AsyncIterator[str]:
            return self.numbers()

        async def numbers(self) -> AsyncIterator[str]:
            try:
                n = 0
                while True:
                    n += 1
                    yield str(n)
            finally:
                order.append("finally begins")
                await asyncio.sleep(0)
                order.append("finally ends")

    async def on_close(reason: Outcome) -> None:
        order.append(f"on_close: {reason}")

    content = aiter(SSEResponse(Numbers(), keep_alive=0, on_close=on_close))
    await within(anext(content))
    await within(anext(content))
    await content.aclose()  # type: ignore[attr-defined]
    assert order == ["finally begins", "finally ends", "on_close: client_disconnected"]


async def test_cancellation_while_waiting_runs_cleanup() -> None:
    """What Django 5+ does on http.disconnect: it cancels the response task."""
    recorder = Recorder()
    response = sse_response(recorder.wrap(forever()), on_close=recorder.on_close)
    received = asyncio.Event()

    async def consume() -> None:
        async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
            async for chunk in content:
                if b"first" in chunk:
                    received.set()

    task = asyncio.create_task(consume())
    await within(received.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.finally_ran
    assert recorder.outcomes == [Outcome.CLIENT_DISCONNECTED]


@pytest.mark.parametrize(
    ("debug", "message"), [(False, "The stream failed on the server."), (True, "boom")]
)
async def test_exception_becomes_error_event(debug: bool, message: str, caplog: Any) -> None:
    recorder = Recorder()

    async def failing() -> AsyncIterator[str]:
        yield "ok"
        raise RuntimeError("boom")

    with override_settings(DEBUG=debug):
        raw = await drain(sse_response(recorder.wrap(failing()), on_close=recorder.on_close))
    events = EventParser().feed(raw)
    assert [e.event for e in events] == ["message", "error"]
    assert events[1].json() == {"message": message}
    assert recorder.outcomes == [Outcome.ERROR]
    assert recorder.finally_ran
    assert "RuntimeError: boom" in caplog.text  # the traceback goes to the log


async def test_yielding_something_unencodable_is_an_error_not_a_crash() -> None:
    recorder = Recorder()
    with override_settings(DEBUG=True):
        raw = await drain(sse_response(items("a", None), on_close=recorder.on_close))
    events = EventParser().feed(raw)
    assert events[-1].event == "error"
    assert "None" in events[-1].json()["message"]
    assert recorder.outcomes == [Outcome.ERROR]


async def test_max_duration_ends_with_timeout() -> None:
    recorder = Recorder()
    response = sse_response(
        recorder.wrap(forever()), max_duration=0.05, keep_alive=0, on_close=recorder.on_close
    )
    events = EventParser().feed(await drain(response))
    assert [e.data for e in events] == ["first"]
    assert recorder.finally_ran
    assert recorder.outcomes == [Outcome.TIMEOUT]


async def test_stop_ends_the_stream_with_the_given_outcome() -> None:
    recorder = Recorder()
    response = sse_response(recorder.wrap(forever()), on_close=recorder.on_close, keep_alive=0)
    async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
        await within(anext(content))
        assert b"first" in await within(anext(content))
        response.stop(Outcome.SHUTDOWN)
        assert await within(anext(content, None)) is None
    assert recorder.finally_ran
    assert recorder.outcomes == [Outcome.SHUTDOWN]


async def test_offered_events_follow_what_the_source_yielded() -> None:
    response = sse_response(forever(), keep_alive=0)
    assert not response.offer(Event(data="too early"))
    async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
        await within(anext(content))
        assert await within(anext(content)) == b"data: first\n\n"
        assert response.offer(Event(data="a", id="7"))
        assert response.offer(Event(data="b"))
        assert await within(anext(content)) == b"data: a\nid: 7\n\ndata: b\n\n"
        assert (response.stats.events, response.stats.last_event_id) == (3, "7")
        # A full buffer refuses more; the source's own path takes over then.
        while response.offer(Event(data="x")):
            pass
        response.stop(Outcome.SHUTDOWN)
        assert not response.offer(Event(data="after stop"))
        rest = b"".join([chunk async for chunk in content])
    assert b"after stop" not in rest
    assert response.stats.events == 3 + rest.count(b"data: x")


class Client:
    """The request's ASGI channels, as a server provides them: records each body sent.

    ``hold`` makes the next body's send wait, as a server's does while the client is
    not reading, until ``release`` is set.
    """

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.hold = False
        self.release = asyncio.Event()
        self.written = asyncio.Event()
        self.cancelled = False

    async def send(self, message: Any) -> None:
        if message["body"] == b"data: refused\n\n":
            raise ConnectionError("the transport refused the write")
        if self.hold:
            self.hold = False
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        self.bodies.append(message["body"])
        self.written.set()

    async def receive(self) -> dict[str, Any]:
        """The client stays: no message ever comes."""
        never: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        return await never


async def idle_stream(
    client: Client,
    keep_alive: float = 0,
    *,
    wrapped: bool = False,
    then: AsyncIterator[Any] | None = None,
) -> tuple[SSEResponse, AsyncIterator[bytes], Any]:
    """A stream served with ``client``'s send, waiting (like Django's handler) for more.

    Its source yields "first", which the engine sends, then what ``then`` yields (by
    default, nothing ever). ``wrapped``: a middleware replaced its streaming_content
    with a wrapper. Returns the response, what Django iterates, and the handler's
    pending read of it.
    """
    pumped = asyncio.Event()

    async def source() -> AsyncIterator[Any]:
        yield "first"
        # The pump asks for more once "first" is in the engine's buffer: it is taken
        # there, and not written by the pump, since the engine was not waiting yet.
        pumped.set()
        if then is None:
            await asyncio.Event().wait()
        else:
            async for item in then:
                yield item

    # As for a request with a body, which stays with Django's handler: the response is
    # served by Django, with the request's own send at hand for direct writes.
    handover = Handover(client.receive, client.send)
    handover.has_body = True
    token = request_handover.set(handover)
    try:
        response = sse_response(source(), keep_alive=keep_alive)
        if wrapped:
            response.streaming_content = (chunk async for chunk in response._engine)
        content = aiter(response)
        await within(anext(content))
        await within(pumped.wait())
        assert await within(anext(content)) == b"data: first\n\n"
    finally:
        request_handover.reset(token)
    reading = asyncio.ensure_future(anext(content))
    # One turn of the loop: the read runs until it waits for the stream's next event.
    await asyncio.sleep(0)
    return response, content, reading


async def test_an_event_offered_to_an_idle_stream_is_written_by_the_offering_code() -> None:
    client = Client()
    response, content, reading = await idle_stream(client)
    assert response.offer(Event(data="a", id="1"))
    # Written before offer() returned, without the engine's task running.
    assert client.bodies == [b"data: a\nid: 1\n\n"]
    assert not reading.done()
    assert (response.stats.events, response.stats.last_event_id) == (2, "1")
    response.stop(Outcome.SHUTDOWN)
    with pytest.raises(StopAsyncIteration):
        await within(reading)
    await content.aclose()  # type: ignore[attr-defined]
    assert response.stats.bytes == len(b":\n" + b"data: first\n\n" + client.bodies[0])


async def test_an_event_the_source_yields_to_an_idle_stream_is_written_by_the_pump() -> None:
    """It leaves before the pump goes back into the source; what the source yields in
    the same turn of the event loop follows in one write from the engine's task."""
    client = Client()
    more = asyncio.Event()

    async def source() -> AsyncIterator[str]:
        await more.wait()
        yield "a"
        assert client.bodies == [b"data: a\n\n"]
        yield "b"
        yield "c"
        await asyncio.Event().wait()

    response, content, reading = await idle_stream(client, then=source())
    more.set()
    assert await within(reading) == b"data: b\n\ndata: c\n\n"
    assert client.bodies == [b"data: a\n\n"]
    assert response.stats.events == 4
    await content.aclose()  # type: ignore[attr-defined]
    assert response.stats.outcome is Outcome.CLIENT_DISCONNECTED


async def test_events_a_source_yields_one_at_a_time_never_wake_the_engine() -> None:
    client = Client()
    steps = [asyncio.Event() for _ in range(3)]
    end = asyncio.Event()

    async def source() -> AsyncIterator[str]:
        for number, step in enumerate(steps):
            await step.wait()
            yield str(number)
        await end.wait()

    response, content, reading = await idle_stream(client, then=source())
    for number, step in enumerate(steps):
        step.set()
        await within(client.written.wait())
        client.written.clear()
        assert client.bodies[-1] == f"data: {number}\n\n".encode()
        await asyncio.sleep(0)  # a turn of the loop, in which a woken engine would run
        assert not reading.done()
    # The source's end does wake it: the stream is complete.
    end.set()
    with pytest.raises(StopAsyncIteration):
        await within(reading)
    assert response.stats.outcome is Outcome.COMPLETED
    assert response.stats.bytes == len(b":\n" + b"data: first\n\n" + b"".join(client.bodies))
    await content.aclose()  # type: ignore[attr-defined]


async def test_nothing_overtakes_an_offered_event_the_client_is_slow_to_take() -> None:
    client = Client()
    response, content, reading = await idle_stream(client)
    client.hold = True
    assert response.offer(Event(data="a"))
    # The write waits for the client; the next offer goes through the engine instead.
    assert response.offer(Event(data="b"))
    await asyncio.sleep(0)
    assert not reading.done()
    client.release.set()
    assert await within(reading) == b"data: b\n\n"
    # The handler sends what the engine returned only after the held write finished.
    assert client.bodies == [b"data: a\n\n"]
    await content.aclose()  # type: ignore[attr-defined]


async def test_closing_a_stream_cancels_an_offered_write_still_waiting() -> None:
    client = Client()
    response, content, reading = await idle_stream(client)
    client.hold = True
    assert response.offer(Event(data="a"))
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await within(content.aclose())  # type: ignore[attr-defined]
    assert client.cancelled
    assert response.stats.outcome == Outcome.CLIENT_DISCONNECTED


async def test_a_failed_write_of_an_offered_event_ends_the_stream_as_an_error() -> None:
    client = Client()
    response, content, reading = await idle_stream(client)
    assert response.offer(Event(data="refused"))
    with pytest.raises(StopAsyncIteration):
        await within(reading)
    await content.aclose()  # type: ignore[attr-defined]
    assert response.stats.outcome == Outcome.ERROR
    assert isinstance(response.stats.error, ConnectionError)


async def test_a_keep_alive_timer_leaves_a_stream_written_to_since_asleep() -> None:
    client = Client()
    response, content, reading = await idle_stream(client, keep_alive=LIMIT)
    stream = response._life._stream
    assert stream is not None
    assert response.offer(Event(data="a"))
    # The timer rings (as it would LIMIT seconds after the stream's last own write),
    # but the offered event moved the keep-alive on: it re-arms without a wake-up.
    stream.ring()
    await asyncio.sleep(0)
    assert not reading.done()
    assert stream._tick is not None
    # Once a keep-alive is due, the ring does wake the engine, which sends it.
    stream._last_sent -= LIMIT
    stream.ring()
    assert await within(reading) == KEEP_ALIVE
    await content.aclose()  # type: ignore[attr-defined]


async def test_a_stream_whose_content_a_middleware_wrapped_never_writes_by_itself() -> None:
    client = Client()
    response, content, reading = await idle_stream(client, wrapped=True)
    assert response.offer(Event(data="a"))
    assert await within(reading) == b"data: a\n\n"
    assert client.bodies == []
    await content.aclose()  # type: ignore[attr-defined]


async def test_on_close_errors_are_logged_not_raised(caplog: Any) -> None:
    async def broken(reason: Outcome) -> None:
        raise ValueError("hook failed")

    await drain(sse_response(items("a"), on_close=broken))
    assert "on_close raised" in caplog.text


async def test_the_request_thread_is_released_while_streaming() -> None:
    """No OS thread per open stream: the engine lets the request's sync thread go."""
    async with ThreadSensitiveContext():
        # What Django's request_started receivers do: start the context's thread.
        worker = await sync_to_async(threading.current_thread, thread_sensitive=True)()
        context = SyncToAsync.thread_sensitive_context.get()
        assert context in SyncToAsync.context_to_thread_executor
        response = sse_response(forever(), keep_alive=0)
        async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
            await within(anext(content))
            assert context not in SyncToAsync.context_to_thread_executor
            await within(asyncio.to_thread(worker.join, LIMIT))
            assert not worker.is_alive()
            # A later sync call in the same request still works, on a new thread.
            again = await sync_to_async(threading.current_thread, thread_sensitive=True)()
            assert again is not worker


def test_iterating_under_wsgi_is_refused_with_the_fix_in_the_message() -> None:
    response = sse_response(items("a"))
    with pytest.raises(RuntimeError) as error:
        iter(response)
    assert str(error.value) == WSGI_REFUSAL
    assert "daphne or uvicorn" in WSGI_REFUSAL


def test_headers() -> None:
    response = sse_response(items())
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response["Cache-Control"] == "no-cache, no-transform"
    assert response["X-Accel-Buffering"] == "no"
    assert response["Content-Encoding"] == "identity"
    assert not response.has_header("Connection")


async def test_a_thread_started_by_the_source_is_released_once_idle() -> None:
    """A sync call inside stream() starts a thread; an idle stream lets it go again."""
    started = asyncio.Event()

    async def source() -> AsyncIterator[str]:
        worker = await sync_to_async(threading.current_thread, thread_sensitive=True)()
        workers.append(worker)
        started.set()
        yield "after a sync call"
        await asyncio.Event().wait()

    workers: list[threading.Thread] = []
    async with ThreadSensitiveContext():
        context = SyncToAsync.thread_sensitive_context.get()
        response = sse_response(source(), keep_alive=0.01)
        async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
            while await within(anext(content)) != b"data: after a sync call\n\n":
                pass
            assert workers[0].is_alive()
            assert await within(anext(content)) == KEEP_ALIVE
            assert context not in SyncToAsync.context_to_thread_executor
            await within(asyncio.to_thread(workers[0].join, LIMIT))
            assert not workers[0].is_alive()


async def test_stop_before_the_stream_starts_ends_it_at_once() -> None:
    recorder = Recorder()
    response = sse_response(recorder.wrap(forever()), on_close=recorder.on_close)
    response.stop(Outcome.SHUTDOWN)
    raw = await drain(response)
    assert EventParser().feed(raw) == []
    assert recorder.outcomes == [Outcome.SHUTDOWN]


def test_a_loop_shutting_down_under_a_stream_is_not_an_error(caplog: Any) -> None:
    recorder = Recorder()
    response = sse_response(recorder.wrap(forever()), on_close=recorder.on_close, keep_alive=0)

    async def consume_first_event() -> None:
        content = aiter(response)
        while b"first" not in await within(anext(content)):
            pass
        # Return with the stream open: asyncio.run() then cancels what is left.
        asyncio.get_running_loop().create_task(anext(content))  # type: ignore[arg-type]

    asyncio.run(consume_first_event())
    # asyncio.run() cancels the remaining tasks in no set order: whichever part of the
    # stream hears it first names the outcome, but it is never an error.
    assert recorder.outcomes in ([Outcome.SHUTDOWN], [Outcome.CLIENT_DISCONNECTED])
    assert recorder.finally_ran
    assert "Stream source raised" not in caplog.text
