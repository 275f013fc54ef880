"""Streams that take their request over from Django's ASGI handler (django_sse._handover).

Driven in-process through django_sse's ASGI application with asgiref's communicator:
what Django's handler does (its final message, response.close(), request_finished)
against what the stream does after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.http import HttpRequest
from django.test import override_settings
from django.urls import path
from django.utils import translation

from django_sse import Event, SSEResponse, sse_response
from django_sse._handover import Handover
from django_sse.asgi import get_asgi_application
from django_sse.protocol import KEEP_ALIVE
from django_sse.stats import Outcome
from tests.asgi import get_scope
from tests.test_response import LIMIT, Observer, forever

pytestmark = [
    pytest.mark.urls(__name__),
    # In-process: no stream log rows (they would need the database from this loop).
    pytest.mark.usefixtures("no_stream_logs"),
]

# The responses of the views below, for the tests to look at; and what the streams saw.
responses: list[SSEResponse] = []
seen: list[Any] = []


@pytest.fixture
def no_stream_logs() -> Iterator[None]:
    responses.clear()
    seen.clear()
    with override_settings(DJANGO_SSE={"LOG_STREAMS": False}):
        yield


def keep(response: SSEResponse) -> SSEResponse:
    responses.append(response)
    return response


async def idle(request: HttpRequest) -> SSEResponse:
    async def events() -> AsyncIterator[Event]:
        yield Event(data="open")
        await asyncio.get_running_loop().create_future()

    return keep(sse_response(events(), request=request, keep_alive=0))


async def unkept(request: HttpRequest) -> SSEResponse:
    """An idle stream whose response only a weak reference follows."""

    async def events() -> AsyncIterator[Event]:
        yield Event(data="open")
        await asyncio.get_running_loop().create_future()

    response = sse_response(events(), request=request, keep_alive=0)
    seen.extend([weakref.ref(response), response.stats])
    return response


async def french(request: HttpRequest) -> SSEResponse:
    translation.activate("fr")

    async def events() -> AsyncIterator[str]:
        yield translation.get_language() or ""

    return keep(sse_response(events(), request=request))


async def echo_body(request: HttpRequest) -> SSEResponse:
    async def events() -> AsyncIterator[Any]:
        # Read while streaming, not in the view: the body must still be readable.
        yield json.loads(request.body)

    return keep(sse_response(events(), request=request, keep_alive=0))


# What csrf_exempt does, which on Django 4.2 cannot wrap an async view.
echo_body.csrf_exempt = True  # type: ignore[attr-defined]


async def body_length(request: HttpRequest) -> SSEResponse:
    async def events() -> AsyncIterator[Any]:
        yield {"read": len(request.body)}

    return keep(sse_response(events(), request=request, keep_alive=0))


async def flood(request: HttpRequest) -> SSEResponse:
    async def events() -> AsyncIterator[str]:
        while True:
            yield "x" * 1000

    return keep(sse_response(events(), request=request, keep_alive=0, max_duration=0.2))


urlpatterns = [
    path("flood/", flood),
    path("idle/", idle),
    path("unkept/", unkept),
    path("french/", french),
    path("echo/", echo_body),
    path("length/", body_length),
]


def communicator(path: str, method: str = "GET") -> ApplicationCommunicator:
    scope = get_scope(path)
    scope["method"] = method
    return ApplicationCommunicator(get_asgi_application(), scope)


async def body_until(app: ApplicationCommunicator, marker: bytes) -> bytes:
    start = await app.receive_output(LIMIT)
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    body = b""
    while marker not in body:
        message = await app.receive_output(LIMIT)
        assert message.get("more_body"), f"the body ended before {marker!r}: {body!r}"
        body += message["body"]
    return body


async def rest_of_body(app: ApplicationCommunicator) -> list[dict[str, Any]]:
    """Every message up to and including the body's end, once the application returned."""
    messages = []
    while True:
        message = await app.receive_output(LIMIT)
        messages.append(message)
        if not message.get("more_body"):
            break
    await app.wait(LIMIT)
    return messages


async def served_body(path: str, *messages: dict[str, Any], method: str = "GET") -> bytes:
    """The whole body of the stream at ``path``, the client having sent ``messages``."""
    app = communicator(path, method)
    for message in messages:
        await app.send_input(message)
    start = await app.receive_output(LIMIT)
    assert start["status"] == 200
    return b"".join(message.get("body", b"") for message in await rest_of_body(app))


@pytest.fixture
def finished_requests() -> Iterator[list[bool]]:
    """For each request_finished: whether the stream it came with had ended by then."""
    ended: list[bool] = []

    def receiver(**kwargs: Any) -> None:
        ended.append(bool(responses) and responses[-1].stats.outcome is not None)

    request_finished.connect(receiver)
    yield ended
    request_finished.disconnect(receiver)


async def test_django_finishes_its_request_while_the_stream_goes_on(
    finished_requests: list[bool],
) -> None:
    app = communicator("/idle/")
    await app.send_input({"type": "http.request", "body": b""})
    assert b"data: open\n\n" in await body_until(app, b"data: open\n\n")
    # request_finished came from Django's handler, which is done: the stream is not.
    assert finished_requests == [False]
    assert responses[0].stats.outcome is None
    await app.send_input({"type": "http.disconnect"})
    messages = await rest_of_body(app)
    assert responses[0].stats.outcome == Outcome.CLIENT_DISCONNECTED
    # One end of the body, the stream's own: Django's was held back.
    assert [m for m in messages if not m.get("more_body")] == [{"type": "http.response.body"}]


async def test_a_stream_taken_over_lets_its_response_go_while_it_streams() -> None:
    app = communicator("/unkept/")
    await app.send_input({"type": "http.request", "body": b""})
    await body_until(app, b"data: open\n\n")
    response, stats = seen
    gc.collect()
    # The headers and the rest of the response are dead once sent (bench/README.md).
    assert response() is None
    assert stats.outcome is None
    await app.send_input({"type": "http.disconnect"})
    await rest_of_body(app)
    assert stats.outcome == Outcome.CLIENT_DISCONNECTED


async def test_a_stream_that_ends_sends_the_end_of_its_body_once() -> None:
    app = communicator("/french/")
    await app.send_input({"type": "http.request", "body": b""})
    start = await app.receive_output(LIMIT)
    assert start["status"] == 200
    messages = await rest_of_body(app)
    ends = [message for message in messages if not message.get("more_body")]
    assert ends == [{"type": "http.response.body"}]
    assert responses[0].stats.outcome == Outcome.COMPLETED


async def test_the_stream_runs_with_the_context_the_view_had() -> None:
    body = await served_body("/french/", {"type": "http.request", "body": b""})
    assert b"data: fr\n\n" in body


async def test_a_request_with_a_body_stays_with_django_and_can_still_be_read() -> None:
    body = await served_body("/echo/", {"type": "http.request", "body": b'{"n": 7}'}, method="POST")
    assert b'data: {"n":7}\n\n' in body
    assert responses[0].stats.outcome == Outcome.COMPLETED


async def test_a_disconnect_django_read_before_the_handover_ends_the_stream_at_once() -> None:
    """The client left while Django still had the request: Django's disconnect listener
    consumed the message, so the stream must not wait for another one."""
    sent: list[Mapping[str, Any]] = []

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    handover = Handover(receive_nothing, send)
    assert await handover.receive() == {"type": "http.disconnect"}

    async def events() -> AsyncIterator[Event]:
        yield Event(data="never sent")

    response = SSEResponse(events(), keep_alive=0)
    assert handover.take(response._life.serve)
    rest = handover.resume()
    assert rest is not None
    await asyncio.wait_for(rest, LIMIT)
    assert response.stats.outcome == Outcome.CLIENT_DISCONNECTED
    assert b"never sent" not in b"".join(m.get("body", b"") for m in sent)
    assert sent[-1] == {"type": "http.response.body"}


async def receive_nothing() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def send_nowhere(message: Any) -> None:
    raise AssertionError(f"nothing may be sent here: {message!r}")


async def test_a_stream_whose_observer_fails_as_it_opens_ends_and_sends_its_end() -> None:
    sent: list[Mapping[str, Any]] = []

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    async def receive_never() -> dict[str, Any]:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")

    handover = Handover(receive_never, send)
    observer = Observer(fails=True)
    response = SSEResponse(forever(), observer=observer, keep_alive=0)
    assert handover.take(response._life.serve)
    rest = handover.resume()
    assert rest is not None
    await asyncio.wait_for(rest, LIMIT)
    assert response.stats.outcome == Outcome.ERROR
    assert observer.heard == ["opened", "closed: error"]
    assert [m.get("body") for m in sent] == [KEEP_ALIVE, None]


async def test_a_request_without_a_body_reads_as_empty_after_the_handover(
    finished_requests: list[bool],
) -> None:
    """Django closes the request's body file when its handler finishes, which for a
    stream taken over is before it begins: the one of a request without a body is
    shared and stays readable, request after request."""
    for _ in range(2):
        body = await served_body("/length/", {"type": "http.request", "body": b""})
        assert b'data: {"read":0}\n\n' in body
    assert finished_requests == [False, False]
    assert [response.stats.outcome for response in responses] == [Outcome.COMPLETED] * 2


async def test_a_body_in_several_messages_arrives_whole() -> None:
    body = await served_body(
        "/echo/",
        # An empty first message that says more follows is not a request without a body.
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b'{"n":', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b" 7}"},
        method="POST",
    )
    assert b'data: {"n":7}\n\n' in body


async def test_a_client_leaving_before_its_body_gets_no_response() -> None:
    app = communicator("/echo/", method="POST")
    await app.send_input({"type": "http.request", "body": b'{"n":', "more_body": True})
    await app.send_input({"type": "http.disconnect"})
    await app.wait(LIMIT)
    assert app.output_queue.empty()
    assert responses == []


def test_a_handover_is_taken_once_and_not_by_a_request_with_a_body() -> None:
    async def continuation(*args: Any) -> None:
        pass

    handover = Handover(receive_nothing, send_nowhere)
    assert handover.take(continuation)
    assert not handover.take(continuation)
    with_body = Handover(receive_nothing, send_nowhere)
    with_body.has_body = True
    assert not with_body.take(continuation)
    assert with_body.resume() is None


async def test_many_idle_streams_each_notice_their_client_leaving() -> None:
    apps = [communicator("/idle/") for _ in range(20)]
    for app in apps:
        await app.send_input({"type": "http.request", "body": b""})
    for app in apps:
        await body_until(app, b"data: open\n\n")
    for app in apps:
        await app.send_input({"type": "http.disconnect"})
    for app in apps:
        await rest_of_body(app)
    assert [response.stats.outcome for response in responses] == [Outcome.CLIENT_DISCONNECTED] * 20


@pytest.mark.parametrize("disconnect_first", [False, True])
async def test_a_stop_and_the_clients_disconnect_at_once_end_the_stream_once(
    disconnect_first: bool,
) -> None:
    """The stream ends (here: a shutdown's stop) in the same turn of the event loop as its
    client's disconnect arrives, while the disconnect's watcher waits: each stream ends
    once, with its body ended once, and nothing fails in a callback."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        apps = [communicator("/idle/") for _ in range(20)]
        for app in apps:
            await app.send_input({"type": "http.request", "body": b""})
        for app in apps:
            await body_until(app, b"data: open\n\n")
        for app, response in zip(apps, responses, strict=True):
            if disconnect_first:
                await app.send_input({"type": "http.disconnect"})
                response.stop(Outcome.SHUTDOWN)
            else:
                response.stop(Outcome.SHUTDOWN)
                await app.send_input({"type": "http.disconnect"})
        for app in apps:
            ends = [m for m in await rest_of_body(app) if not m.get("more_body")]
            assert len(ends) == 1
    finally:
        loop.set_exception_handler(None)
    # The stop is made before the loop turns, so it comes first either way.
    assert [response.stats.outcome for response in responses] == [Outcome.SHUTDOWN] * 20
    assert errors == []


@pytest.mark.parametrize("application", [get_asgi_application, ASGIHandler])
async def test_a_client_that_stops_reading_cannot_hold_a_stream_past_its_deadline(
    application: Any,
) -> None:
    """The server's send() of the first body bytes never returns, as when the client
    reads nothing and the socket's buffers are full; on django_sse's application (the
    stream taken over) and on Django's own (Django writes each chunk)."""
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Mapping[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.get_running_loop().create_future()  # no disconnect: the client stays
        raise AssertionError("unreachable")

    async def send(message: Mapping[str, Any]) -> None:
        if message.get("body"):
            await asyncio.get_running_loop().create_future()

    with (
        override_settings(DJANGO_SSE={"LOG_STREAMS": False, "CLEANUP_TIMEOUT": 0.2}),
        # Django 4.2 writes from the application's own task, whose send() is cancelled.
        contextlib.suppress(asyncio.CancelledError),
    ):
        await asyncio.wait_for(application()(get_scope("/flood/"), receive, send), LIMIT)
    (response,) = responses
    assert response.stats.outcome == Outcome.TIMEOUT
    assert response.stats.ended_at is not None
