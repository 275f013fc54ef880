"""Requests through django_sse's ASGI application take their sync thread from a pool."""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_started
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path

from django_sse import sse_response
from django_sse._request_threads import RequestContext, _pool
from django_sse.asgi import get_asgi_application
from django_sse.protocol import KEEP_ALIVE
from tests.asgi import get_scope
from tests.test_response import LIMIT, forever, within

pytestmark = pytest.mark.urls(__name__)

# Threads seen by the views below and by request_started's receiver, in order.
seen: list[threading.Thread] = []
# What the views holding their request open wait for, and where they say they have
# made their sync call: new for each test, as each test has its own event loop.
gate = asyncio.Event()
arrived: asyncio.Queue[None] = asyncio.Queue()


def record_thread() -> threading.Thread:
    thread = threading.current_thread()
    seen.append(thread)
    return thread


def sync_view(request: HttpRequest) -> HttpResponse:
    record_thread()
    return HttpResponse("sync")


async def held_view(request: HttpRequest) -> HttpResponse:
    await sync_to_async(record_thread)()
    arrived.put_nowait(None)
    await gate.wait()
    return HttpResponse("held")


async def two_calls_view(request: HttpRequest) -> HttpResponse:
    await sync_to_async(record_thread)()
    await sync_to_async(record_thread)()
    return HttpResponse("two calls")


def query_view(request: HttpRequest) -> HttpResponse:
    record_thread()
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    opened = connections["default"].connection is not None
    return HttpResponse(f"opened: {opened}")


async def stream_view(request: HttpRequest) -> Any:
    return sse_response(forever())


# Sync calls that block until a test lets them go, and where they say they started.
unblock = threading.Event()
blocked: list[threading.Thread] = []


def blocking_call(loop: asyncio.AbstractEventLoop) -> None:
    blocked.append(threading.current_thread())
    loop.call_soon_threadsafe(arrived.put_nowait, None)
    unblock.wait(LIMIT)


async def blocked_stream_view(request: HttpRequest) -> Any:
    async def source() -> AsyncIterator[str]:
        yield "before"
        await sync_to_async(blocking_call)(asyncio.get_running_loop())
        yield "after"

    return sse_response(source(), keep_alive=0.01)


urlpatterns = [
    path("sync/", sync_view),
    path("held/", held_view),
    path("two-calls/", two_calls_view),
    path("query/", query_view),
    path("stream/", stream_view),
    path("blocked-stream/", blocked_stream_view),
]


@pytest.fixture(autouse=True)
def fresh_state() -> None:
    """No idle thread left by other tests, nothing seen yet, a new gate."""
    global gate, arrived
    gate = asyncio.Event()
    arrived = asyncio.Queue()
    unblock.clear()
    blocked.clear()
    for executor in _pool.idle:
        executor.shutdown(wait=False)
    _pool.idle.clear()
    seen.clear()


@pytest.fixture
def started_on() -> Iterator[list[threading.Thread]]:
    """The thread each request's request_started receivers ran on."""
    threads: list[threading.Thread] = []

    def receiver(**kwargs: Any) -> None:
        threads.append(threading.current_thread())

    request_started.connect(receiver)
    yield threads
    request_started.disconnect(receiver)


def request(path: str) -> ApplicationCommunicator:
    return ApplicationCommunicator(get_asgi_application(), get_scope(path))


async def send_request(*communicators: ApplicationCommunicator) -> None:
    for communicator in communicators:
        await communicator.send_input({"type": "http.request", "body": b""})


async def read_response(communicator: ApplicationCommunicator) -> tuple[int, bytes]:
    """The status and the whole body, once the application has returned."""
    start = await communicator.receive_output(LIMIT)
    assert start["type"] == "http.response.start"
    body = b""
    while True:
        message = await communicator.receive_output(LIMIT)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(LIMIT)
    return int(start["status"]), body


async def get(path: str) -> bytes:
    communicator = request(path)
    await send_request(communicator)
    status, body = await read_response(communicator)
    assert status == 200
    return body


async def wait_for_arrivals(count: int) -> None:
    for _ in range(count):
        await arrived.get()


async def test_requests_one_after_another_run_on_the_same_thread(
    started_on: list[threading.Thread],
) -> None:
    assert await get("/sync/") == b"sync"
    assert await get("/sync/") == b"sync"
    first, second = seen
    assert first is second
    assert first is not threading.current_thread()
    assert started_on == [first, first]


@override_settings(DJANGO_SSE={"IDLE_REQUEST_THREADS": 0})
async def test_without_the_pool_each_request_starts_its_own_thread() -> None:
    await get("/sync/")
    await get("/sync/")
    first, second = seen
    assert first is not second
    assert _pool.idle == []


async def test_a_request_makes_all_its_sync_calls_on_one_thread(
    started_on: list[threading.Thread],
) -> None:
    assert await get("/two-calls/") == b"two calls"
    assert started_on == seen[:1]
    assert seen[0] is seen[1]


async def test_concurrent_requests_each_have_a_thread_of_their_own() -> None:
    held = [request("/held/"), request("/held/")]
    await send_request(*held)
    await within(wait_for_arrivals(2))
    assert seen[0] is not seen[1]
    gate.set()
    for communicator in held:
        assert await read_response(communicator) == (200, b"held")
    assert len(_pool.idle) == 2
    await get("/sync/")
    assert seen[2] in seen[:2]


@override_settings(DJANGO_SSE={"IDLE_REQUEST_THREADS": 1})
async def test_idle_threads_beyond_the_setting_exit() -> None:
    held = [request("/held/") for _ in range(3)]
    await send_request(*held)
    await within(wait_for_arrivals(3))
    threads = list(seen)
    assert len(set(threads)) == 3
    gate.set()
    for communicator in held:
        assert await read_response(communicator) == (200, b"held")
    kept = _pool_thread()
    assert kept in threads
    exiting = [thread for thread in threads if thread is not kept]
    assert len(exiting) == 2
    for thread in exiting:
        await within(asyncio.to_thread(thread.join, LIMIT))
        assert not thread.is_alive()
    assert kept.is_alive()


def _pool_thread() -> threading.Thread:
    """The thread of the one idle executor."""
    (executor,) = _pool.idle
    return executor.submit(threading.current_thread).result(LIMIT)


async def test_a_stream_gives_its_thread_back_while_it_streams(
    started_on: list[threading.Thread],
) -> None:
    stream = request("/stream/")
    await send_request(stream)
    start = await stream.receive_output(LIMIT)
    assert start["status"] == 200
    first_chunk = await stream.receive_output(LIMIT)
    assert first_chunk["more_body"]
    (stream_thread,) = started_on
    # The stream still runs, and another request gets the thread it started on.
    assert await get("/sync/") == b"sync"
    assert seen == [stream_thread]
    await stream.send_input({"type": "http.disconnect"})
    await stream.wait(LIMIT)


@pytest.mark.django_db(transaction=True)
async def test_database_connections_do_not_outlive_their_request() -> None:
    assert await get("/query/") == b"opened: True"
    (executor,) = _pool.idle

    def closed() -> bool:
        return connections["default"].connection is None

    assert await asyncio.wrap_future(executor.submit(closed))
    assert executor.submit(threading.current_thread).result(LIMIT) is seen[0]


async def test_inside_a_thread_sensitive_context_its_thread_is_used() -> None:
    async with ThreadSensitiveContext():
        outer = await sync_to_async(threading.current_thread)()
        async with RequestContext():
            inner = await sync_to_async(threading.current_thread)()
    assert inner is outer
    assert _pool.idle == []


def test_a_forked_child_keeps_no_idle_thread() -> None:
    executor = _pool.take()
    executor.submit(threading.current_thread).result(LIMIT)
    _pool.give_back(executor)
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that has threads.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:
        os._exit(len(_pool.idle))
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _pool.idle == [executor]


@override_settings(DJANGO_SSE={"IDLE_REQUEST_THREADS": "16"})
async def test_a_setting_that_is_not_a_whole_number_is_named_in_the_error() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"IDLE_REQUEST_THREADS'\] is '16'"):
        await get("/sync/")


async def test_a_stream_blocked_in_a_sync_call_lends_its_thread_to_nobody() -> None:
    """The keep-alive lets the stream's thread go while the sync call still runs on it."""
    stream = request("/blocked-stream/")
    await send_request(stream)
    await within(wait_for_arrivals(1))
    while (await stream.receive_output(LIMIT)).get("body") != b"data: before\n\n":
        pass
    assert (await stream.receive_output(LIMIT))["body"] == KEEP_ALIVE
    try:
        # Would wait for the blocked call if it were handed the blocked thread.
        assert await within(get("/sync/")) == b"sync"
        assert seen[-1] is not blocked[0]
    finally:
        unblock.set()
    await stream.send_input({"type": "http.disconnect"})
    await stream.wait(LIMIT)
