"""What ``connect()`` and ``aconnect()`` refuse when they are called, before any request:
an option out of its range or of the wrong type, and a URL whose host or port no socket
takes. Each mistake used to be accepted and to show up later, if at all: a negative
``max_retries`` gave up "after -1 attempts", a negative ``read_timeout`` timed out every
read and reconnected for ever, a string ``retry`` raised a TypeError at the first
reconnection, and port 99999 silently reached port 34463."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest

from django_sse.client import aconnect, connect
from tests.client.scripted_server import ScriptedServer, event_stream


async def open_and_leave(asynchronous: bool, url: str, **options: Any) -> None:
    """Enter and leave ``connect()`` (in a thread) or ``aconnect()``, iterating nothing."""
    if asynchronous:
        async with aconnect(url, **options):
            return

    def enter() -> None:
        with connect(url, **options):
            return

    await asyncio.to_thread(enter)


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def asynchronous(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


@pytest.mark.parametrize(
    ("options", "error", "says"),
    [
        ({"max_retries": -1}, ValueError, "max_retries must be a whole number from 0 up, not -1"),
        ({"max_retries": 1.5}, TypeError, "max_retries must be a whole number"),
        ({"max_retries": "3"}, TypeError, "max_retries must be a whole number"),
        ({"max_retries": True}, TypeError, "max_retries must be a whole number"),
        ({"retry": -1}, ValueError, "retry must be a whole number of milliseconds from 0 up"),
        ({"retry": 2.5}, TypeError, "retry must be a whole number of milliseconds"),
        ({"retry": "3000"}, TypeError, "retry must be a whole number of milliseconds"),
        ({"max_redirects": -1}, ValueError, "max_redirects must be a whole number from 0 up"),
        ({"max_redirects": None}, TypeError, "max_redirects must be a whole number"),
        ({"read_timeout": -1}, ValueError, "read_timeout must be"),
        ({"read_timeout": 0}, ValueError, "read_timeout must be"),
        ({"read_timeout": math.nan}, ValueError, "read_timeout must be"),
        ({"read_timeout": math.inf}, ValueError, "read_timeout must be"),
        # More than a socket can wait: OverflowError at the first read.
        ({"read_timeout": 1e10}, ValueError, "read_timeout must be"),
        ({"read_timeout": "60"}, TypeError, "read_timeout must be a number of seconds"),
        ({"backoff_cap": "30"}, TypeError, "backoff_cap must be a number of seconds"),
    ],
)
async def test_an_option_out_of_range_or_of_the_wrong_type_is_refused_at_the_call(
    server: ScriptedServer,
    asynchronous: bool,
    options: dict[str, Any],
    error: type[Exception],
    says: str,
) -> None:
    server.play(event_stream(b"data: a\n\n"))
    with pytest.raises(error, match=says):
        await open_and_leave(asynchronous, server.url(), **options)
    assert server.connections == 0


@pytest.mark.parametrize(
    "options",
    [
        {"max_retries": 0, "retry": 0, "max_redirects": 0, "read_timeout": None},
        {"max_retries": None, "retry": None, "read_timeout": 86400, "backoff_cap": 0},
        {"read_timeout": 0.5, "backoff_cap": 86400},
    ],
)
async def test_the_edges_of_each_range_are_accepted(
    asynchronous: bool, options: dict[str, Any]
) -> None:
    await open_and_leave(asynchronous, "http://127.0.0.1/", **options)


async def test_a_port_past_65535_is_refused_not_wrapped(
    server: ScriptedServer, asynchronous: bool
) -> None:
    # 65536 more than the server's port: the resolver wraps it to the server's port.
    wrapped = f"http://127.0.0.1:{server.port + 65536}/events"
    server.play(event_stream(b"data: reached\n\n"))
    with pytest.raises(httpx.InvalidURL, match=f"{server.port + 65536} is not from 1 to 65535"):
        await open_and_leave(asynchronous, wrapped)
    assert server.connections == 0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:0/events", "0 is not from 1 to 65535"),
        ("http://a..b/events", "Invalid host in http://a..b/events"),
        (f"http://{'a' * 64}.example/", "Invalid host"),
        ("http://xn--/events", "Invalid host"),
    ],
)
async def test_a_url_no_socket_can_reach_is_refused_at_the_call(
    asynchronous: bool, url: str, says: str
) -> None:
    # The host errors came out of the resolver as a bare UnicodeError.
    with pytest.raises(httpx.InvalidURL, match=says):
        await open_and_leave(asynchronous, url)


async def test_a_relative_url_is_checked_against_the_clients_base_url(
    server: ScriptedServer, asynchronous: bool
) -> None:
    server.play(event_stream(b"data: a\n\n"))
    base_url = f"http://127.0.0.1:{server.port + 65536}"
    client: httpx.Client | httpx.AsyncClient
    client = (
        httpx.AsyncClient(base_url=base_url) if asynchronous else httpx.Client(base_url=base_url)
    )
    try:
        with pytest.raises(httpx.InvalidURL, match="is not from 1 to 65535"):
            await open_and_leave(asynchronous, "/events", client=client)
    finally:
        if isinstance(client, httpx.AsyncClient):
            await client.aclose()
        else:
            client.close()
    assert server.connections == 0
