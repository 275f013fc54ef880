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
        # What goes into the request: each failed inside httpx or h11 at the first
        # connection (AttributeError: 'int' object has no attribute 'upper', ValueError:
        # not enough values to unpack), or was sent as something else.
        ({"method": 123}, TypeError, "method must be an HTTP method such as 'GET' or 'POST'"),
        ({"method": ""}, ValueError, "method must be an HTTP method"),
        ({"method": "GE T"}, ValueError, "method must be an HTTP method"),
        ({"headers": 42}, TypeError, "headers must be a mapping of names to values, not 42"),
        (
            {"headers": ["x"]},
            TypeError,
            r"headers must be a mapping of names to values, not \['x'\]",
        ),
        ({"headers": {1: "a"}}, TypeError, "header names must be HTTP tokens"),
        ({"headers": {"X Token": "a"}}, ValueError, "header names must be HTTP tokens"),
        ({"headers": {"X-Token": 1}}, TypeError, "header X-Token must be a str, not 1"),
        ({"headers": {"X-Token": "café"}}, ValueError, "header X-Token must be ASCII"),
        ({"headers": {"X-Token": "a\nb"}}, ValueError, "header X-Token must be ASCII"),
        ({"headers": {"X-Token": "a "}}, ValueError, "no space at either end"),
        ({"json": object()}, TypeError, "json must be serializable to JSON: Object of type"),
        ({"json": {"x": math.nan}}, ValueError, "json must be serializable to JSON: Out of range"),
        ({"data": 5}, TypeError, "data must be a mapping of form fields to values, not 5"),
        ({"data": "a=1"}, TypeError, "data must be a mapping of form fields"),
        ({"data": {"a": object()}}, TypeError, "data must map str names to str, numbers"),
        ({"data": {"a": [b"x"]}}, TypeError, "data must map str names"),
        # The form was sent, and the JSON dropped without a word.
        ({"json": {"a": 1}, "data": {"b": 2}}, ValueError, "json and data are both request"),
        ({"last_event_id": 5}, TypeError, "last_event_id must be a str, not 5"),
        ({"last_event_id": None}, TypeError, "last_event_id must be a str, not None"),
        ({"last_event_id": "4\n2"}, ValueError, "last_event_id must hold no control character"),
        # Truthy stand-ins: reconnect="no" reconnected.
        ({"reconnect": "no"}, TypeError, "reconnect must be True or False, not 'no'"),
        ({"reconnect": None}, TypeError, "reconnect must be True or False"),
        ({"repeat_post": 1}, TypeError, "repeat_post must be True or False"),
        ({"follow_redirects": "yes"}, TypeError, "follow_redirects must be True or False"),
        ({"redirect_credentials": 0}, TypeError, "redirect_credentials must be True or False"),
        ({"on_status": 5}, TypeError, "on_status must be callable, not 5"),
        ({"on_comment": "print"}, TypeError, "on_comment must be callable"),
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
        {
            "method": "post",
            "headers": httpx.Headers({"X-Token": "a\tb", "X-Empty": ""}),
            "data": {"a": ["1", 2, 3.5, True, None], "b": "c"},
            "last_event_id": "naïve\t",
            "on_status": print,
            "on_comment": print,
        },
        {"json": [1, "a", {"b": None}], "reconnect": False, "follow_redirects": False},
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


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://127.0.0.1/events", "ftp://127.0.0.1/events is not http:// or https://"),
        ("not-a-url", "not-a-url is not http:// or https://"),
        # No host: a relative URL, which httpx resolves to "/".
        ("http://", "/ is not http:// or https://"),
    ],
)
async def test_a_url_that_is_not_http_is_refused_at_the_call(
    asynchronous: bool, url: str, says: str
) -> None:
    # The error httpx raised when sending it, now before any request.
    with pytest.raises(httpx.UnsupportedProtocol, match=says):
        await open_and_leave(asynchronous, url)


async def test_a_client_of_the_other_kind_is_refused_at_the_call(asynchronous: bool) -> None:
    # An AsyncClient given to connect() failed at the first request, in httpx's words.
    other: httpx.Client | httpx.AsyncClient
    other = httpx.Client() if asynchronous else httpx.AsyncClient()
    expected = "AsyncClient" if asynchronous else "Client"
    try:
        with pytest.raises(TypeError, match=f"client must be an httpx.{expected} or None, not"):
            await open_and_leave(asynchronous, "http://127.0.0.1/", client=other)
    finally:
        if isinstance(other, httpx.AsyncClient):
            await other.aclose()
        else:
            other.close()
