"""Where the client does what a browser's EventSource does (issue 23): redirects, the
request's headers, comments, a restart, and the first reconnection delay. Each scenario
on ``connect()`` and ``aconnect()``, against the scripted raw HTTP server."""

from __future__ import annotations

import json

import pytest

from django_sse.client import SSERedirectError, SSEResponseError
from django_sse.protocol import MessageEvent
from tests.client.drivers import Driver
from tests.client.scripted_server import (
    Hold,
    Reply,
    ScriptedServer,
    event_stream,
    moved,
    no_content,
)

# ---------------------------------------------------------------------------
# Redirects
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["301", "302", "303", "307", "308"])
async def test_each_redirect_is_followed_with_the_last_event_id(
    sse: Driver, server: ScriptedServer, status: str
) -> None:
    server.play(moved(f"{status} Moved", "/moved?x=1"), event_stream(b"data: a\n\n"), no_content())
    run = await sse.run(server.url(), last_event_id="7", retry=1)
    assert run.data == ["a"]
    _, second, third = server.requests
    assert second.target == "/moved?x=1"
    assert second.headers["last-event-id"] == "7"
    assert second.headers["accept"] == "text/event-stream"
    # A reconnection asks the URL it was given, as EventSource does, not the redirect's.
    assert third.target == "/events"
    assert run.states.count("connected") == 1


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [
        ("307", "POST", b'{"q":1}'),
        ("308", "POST", b'{"q":1}'),
        ("303", "GET", b""),
        ("302", "GET", b""),
    ],
)
async def test_a_post_keeps_its_method_and_body_only_through_307_and_308(
    sse: Driver, server: ScriptedServer, status: str, method: str, body: bytes
) -> None:
    server.play(moved(f"{status} Moved", "/moved"), event_stream(b"data: a\n\n"))
    run = await sse.run(server.url(), method="POST", json={"q": 1})
    assert run.data == ["a"]
    redirected = server.requests[1]
    assert (redirected.method, redirected.body) == (method, body)


async def test_a_redirect_loop_is_an_error_naming_every_url(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(moved("302 Found", "/b"), moved("302 Found", "/events"))
    run = await sse.run(server.url(), expect=SSERedirectError)
    assert isinstance(run.error, SSERedirectError)
    assert run.error.urls == [server.url(), server.url("/b"), server.url()]
    assert "Redirect loop" in str(run.error)
    assert server.url("/b") in str(run.error)
    assert "reconnecting" not in run.states


def back_with_cookie(status: str, cookie: str) -> Reply:
    """A redirect to the URL the tests ask, /events, that sets ``cookie``."""
    headers = [("Location", "/events"), ("Set-Cookie", f"{cookie}; Path=/")]
    return Reply(status, [*headers, ("Content-Length", "0")])


async def test_a_redirect_back_that_changed_the_request_is_not_a_loop(
    sse: Driver, server: ScriptedServer
) -> None:
    # Sent again as it was, a request gets the same answer: that is a loop. A redirect
    # to the same URL that set a cookie (a session started, a proxy's cookie check), or
    # a 303 that turns a POST into a GET of the same URL, asks something new, and a
    # browser follows it; the client called both a loop.
    server.play(
        back_with_cookie("303 See Other", "session=s1"),
        back_with_cookie("302 Found", "checked=1"),
        event_stream(b"data: a\n\n"),
    )
    run = await sse.run(server.url(), method="POST", json={"q": 1}, reconnect=False)
    assert run.data == ["a"]
    assert [request.method for request in server.requests] == ["POST", "GET", "GET"]
    # As sets: the order of a jar's cookies in the header differs between httpx versions.
    cookies = [request.headers.get("cookie") for request in server.requests]
    assert [None if header is None else set(header.split("; ")) for header in cookies] == [
        None,
        {"session=s1"},
        {"session=s1", "checked=1"},
    ]


async def test_a_redirect_that_sends_the_same_request_again_is_a_loop(
    sse: Driver, server: ScriptedServer
) -> None:
    # The same cookie set again changes nothing: the third request is the second's twin.
    again = back_with_cookie("302 Found", "session=s1")
    server.play(again, again, event_stream(b"data: never\n\n"))
    run = await sse.run(server.url(), expect=SSERedirectError)
    assert isinstance(run.error, SSERedirectError)
    assert run.error.urls == [server.url()] * 3
    assert server.connections == 2


async def test_too_many_redirects_are_an_error(sse: Driver, server: ScriptedServer) -> None:
    server.play(*(moved("307 Again", f"/hop{n}") for n in range(3)))
    run = await sse.run(server.url(), max_redirects=2, expect=SSERedirectError)
    assert isinstance(run.error, SSERedirectError)
    assert "More than 2 redirects" in str(run.error)
    assert len(run.error.urls) == 4
    assert server.connections == 3


@pytest.mark.parametrize(
    ("location", "says"),
    [
        # Each was a bare UnicodeError from the resolver or from httpx reading the host.
        ("http://a..b/there", "http://a..b/there"),
        ("//a..b/there", "http://a..b/there"),
        (f"http://{'a' * 64}.example/", "aaaa.example/"),
        ("http://xn--a.example/", "Location"),
        # httpx could not read these: a RemoteProtocolError, retried with backoff for ever.
        ("http://[::1/", "Invalid port"),
        ("http://127.0.0.1:x/", "Invalid port: 'x'"),
        # Not a URL httpx can go to: a bare httpx.InvalidURL, which named no redirect.
        ("mailto:someone@example.com", "path must be empty or begin with '/'"),
        # Not HTTP: httpx.UnsupportedProtocol, which named no redirect.
        ("ftp://127.0.0.1/there", "ftp://127.0.0.1/there is not http"),
        ("http://127.0.0.1:0/there", "0 is not from 1 to 65535"),
    ],
)
async def test_a_location_that_cannot_be_asked_is_a_redirect_error(
    sse: Driver, server: ScriptedServer, location: str, says: str
) -> None:
    server.play(moved("302 Found", location), event_stream(b"data: never\n\n"))
    run = await sse.run(server.url(), retry=1, max_retries=3, expect=SSERedirectError)
    assert isinstance(run.error, SSERedirectError)
    assert "cannot be" in str(run.error)
    assert says in str(run.error)
    assert run.error.urls == [server.url()]
    assert run.states == []
    assert server.connections == 1


async def test_a_location_past_port_65535_is_not_wrapped(
    sse: Driver, server: ScriptedServer
) -> None:
    # 65536 more than the server's own port: the resolver wrapped it to this server.
    location = f"http://127.0.0.1:{server.port + 65536}/there"
    server.play(moved("307 Elsewhere", location), event_stream(b"data: reached\n\n"))
    run = await sse.run(server.url(), reconnect=False, expect=SSERedirectError)
    assert f"{location}: {server.port + 65536} is not from 1 to 65535" in str(run.error)
    assert run.data == []
    assert server.connections == 1


async def test_redirects_can_be_refused(sse: Driver, server: ScriptedServer) -> None:
    server.play(moved("301 Moved", "/moved"), event_stream(b"data: never\n\n"))
    run = await sse.run(server.url(), follow_redirects=False, expect=SSEResponseError)
    assert isinstance(run.error, SSEResponseError)
    assert run.error.status_code == 301
    assert server.connections == 1


@pytest.mark.parametrize("redirect_credentials", [False, True])
async def test_credentials_stay_at_home_unless_the_caller_says(
    sse: Driver, server: ScriptedServer, elsewhere: ScriptedServer, redirect_credentials: bool
) -> None:
    server.play(moved("307 Elsewhere", elsewhere.url("/there")))
    elsewhere.play(event_stream(b"data: a\n\n"))
    headers = {"Authorization": "Bearer secret", "X-Trace": "t1"}
    run = await sse.run(
        server.url(),
        headers=headers,
        reconnect=False,
        redirect_credentials=redirect_credentials,
    )
    assert run.data == ["a"]
    assert server.requests[0].headers["authorization"] == "Bearer secret"
    there = elsewhere.requests[0].headers
    assert there["x-trace"] == "t1"
    assert there.get("authorization") == ("Bearer secret" if redirect_credentials else None)


async def test_credentials_go_along_a_redirect_to_the_same_origin(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(moved("308 Here", "/here"), event_stream(b"data: a\n\n"))
    run = await sse.run(server.url(), headers={"Authorization": "Bearer s"}, reconnect=False)
    assert run.data == ["a"]
    assert server.requests[1].headers["authorization"] == "Bearer s"


# ---------------------------------------------------------------------------
# What the request says
# ---------------------------------------------------------------------------


async def test_the_request_asks_as_eventsource_does(sse: Driver, server: ScriptedServer) -> None:
    server.play(event_stream(b"data: a\n\n"))
    await sse.run(server.url(), reconnect=False)
    headers = server.requests[0].headers
    assert headers["accept"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"


# ---------------------------------------------------------------------------
# Comments
# ---------------------------------------------------------------------------

WITH_COMMENTS = b": one\ndata: a\n\n:two\n:\n: three  \ndata: b\n\n"


async def test_comments_reach_on_comment_in_order_with_the_events(
    sse: Driver, server: ScriptedServer
) -> None:
    seen: list[tuple[str, str]] = []

    def on_event(event: MessageEvent) -> None:
        seen.append(("event", event.data))

    server.play(event_stream(WITH_COMMENTS))
    run = await sse.run(
        server.url(),
        reconnect=False,
        on_event=on_event,
        on_comment=lambda text: seen.append(("comment", text)),
    )
    assert run.data == ["a", "b"]
    assert seen == [
        ("comment", "one"),
        ("event", "a"),
        ("comment", "two"),
        ("comment", ""),
        ("comment", "three  "),
        ("event", "b"),
    ]


async def test_without_on_comment_comments_stay_unseen(sse: Driver, server: ScriptedServer) -> None:
    server.play(event_stream(WITH_COMMENTS))
    run = await sse.run(server.url(), reconnect=False)
    assert run.data == ["a", "b"]


# ---------------------------------------------------------------------------
# restart()
# ---------------------------------------------------------------------------


async def test_restart_drops_the_connection_and_resumes_at_once(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(
        event_stream(b"retry: 60000\nid: 1\ndata: a\n\n", Hold()),
        event_stream(b"id: 2\ndata: b\n\n", Hold()),
    )
    # The server asked for a minute between connections, and max_retries=0 allows no
    # failure: a restart is neither a wait nor a failure.
    run = await sse.run(server.url(), restart_after=1, stop_after=2, max_retries=0)
    assert run.data == ["a", "b"]
    assert server.requests[1].headers["last-event-id"] == "1"
    assert run.states == ["connected", "restarting", "connected"]
    restarting = run.statuses[1]
    assert (restarting.delay, restarting.attempt) == (0.0, 0)


# ---------------------------------------------------------------------------
# The first reconnection delay
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "delay"), [(b"data: a\n\n", 0.002), (b"retry: 1\ndata: a\n\n", 0.001)]
)
async def test_an_initial_retry_until_the_server_sends_one(
    sse: Driver, server: ScriptedServer, stream: bytes, delay: float
) -> None:
    server.play(event_stream(stream), no_content())
    run = await sse.run(server.url(), retry=2)
    assert run.data == ["a"]
    assert run.reconnecting()[0].delay == delay
    assert run.reconnection_time == delay * 1000


def test_the_options_reach_both_clients_by_name() -> None:
    # A JSON-able description of what the docs table promises, checked against the code.
    from django_sse.client._options import SourceOptions

    options = SourceOptions()
    promised = {
        "follow_redirects": True,
        "max_redirects": 10,
        "redirect_credentials": False,
        "retry": None,
        "on_comment": None,
    }
    assert {name: getattr(options, name) for name in promised} == promised
    assert json.dumps(promised)
