"""Credentials that come with the caller's httpx client, through redirects: its ``auth``,
its cookies, and its own redirect settings, which must not bypass the client's rules.
Each scenario on ``connect()`` and ``aconnect()``, against two scripted raw HTTP servers
(two origins: the same host, another port)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from django_sse.client import SSERedirectError, SSEResponseError
from tests.client.drivers import Driver
from tests.client.scripted_server import Reply, ScriptedServer, event_stream

BASIC = "Basic " + base64.b64encode(b"user:secret").decode()


def moved(status: str, location: str) -> Reply:
    return Reply(status, [("Location", location), ("Content-Length", "0")])


def cookies_of(headers: dict[str, str]) -> set[str]:
    return set(filter(None, headers.get("cookie", "").split("; ")))


@pytest.fixture
async def elsewhere() -> AsyncIterator[ScriptedServer]:
    """Another origin: the same host on another port."""
    async with ScriptedServer() as scripted:
        yield scripted


@pytest.mark.parametrize("redirect_credentials", [False, True])
async def test_the_clients_auth_stays_at_home(
    sse: Driver, server: ScriptedServer, elsewhere: ScriptedServer, redirect_credentials: bool
) -> None:
    # Home, home again, elsewhere, and back home: httpx applies a client's auth on every
    # send(), whatever the origin, so the client decides per hop.
    server.play(
        moved("308 Here", "/here"),
        moved("307 Elsewhere", elsewhere.url("/there")),
        event_stream(b"data: a\n\n"),
    )
    elsewhere.play(moved("307 Back", server.url("/back")))
    http = sse.new_client(auth=("user", "secret"))
    try:
        run = await sse.run(
            server.url(), client=http, reconnect=False, redirect_credentials=redirect_credentials
        )
    finally:
        await sse.close_client(http)
    assert run.data == ["a"]
    away = BASIC if redirect_credentials else None
    home = [request.headers.get("authorization") for request in server.requests]
    assert home == [BASIC, BASIC, away]
    assert elsewhere.requests[0].headers.get("authorization") == away


@pytest.mark.parametrize("redirect_credentials", [False, True])
async def test_cookies_without_a_domain_stay_at_home(
    sse: Driver, server: ScriptedServer, elsewhere: ScriptedServer, redirect_credentials: bool
) -> None:
    cookies = httpx.Cookies()
    cookies.set("session", "s")  # no domain: it would match any host
    cookies.set("shared", "x", domain="127.0.0.1")  # both servers' host
    server.play(moved("308 Here", "/here"), moved("307 Elsewhere", elsewhere.url("/there")))
    elsewhere.play(event_stream(b"data: a\n\n"))
    http = sse.new_client(cookies=cookies)
    try:
        run = await sse.run(
            server.url(), client=http, reconnect=False, redirect_credentials=redirect_credentials
        )
    finally:
        await sse.close_client(http)
    assert run.data == ["a"]
    both = {"session=s", "shared=x"}
    assert [cookies_of(request.headers) for request in server.requests] == [both, both]
    away = both if redirect_credentials else {"shared=x"}
    assert cookies_of(elsewhere.requests[0].headers) == away


async def test_the_clients_follow_redirects_does_not_override_the_option(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(moved("301 Moved", "/moved"), event_stream(b"data: never\n\n"))
    http = sse.new_client(follow_redirects=True)
    try:
        run = await sse.run(
            server.url(), client=http, follow_redirects=False, expect=SSEResponseError
        )
    finally:
        await sse.close_client(http)
    assert isinstance(run.error, SSEResponseError)
    assert run.error.status_code == 301
    assert server.connections == 1


async def test_the_clients_follow_redirects_does_not_lift_max_redirects(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(*(moved("307 Again", f"/hop{n}") for n in range(3)))
    http = sse.new_client(follow_redirects=True)
    try:
        run = await sse.run(server.url(), client=http, max_redirects=1, expect=SSERedirectError)
    finally:
        await sse.close_client(http)
    assert "More than 1 redirects" in str(run.error)
    assert server.connections == 2


async def test_the_clients_follow_redirects_does_not_leak_proxy_authorization(
    sse: Driver, server: ScriptedServer, elsewhere: ScriptedServer
) -> None:
    # httpx's own redirect following drops Authorization for another origin, not
    # Proxy-Authorization.
    server.play(moved("307 Elsewhere", elsewhere.url("/there")))
    elsewhere.play(event_stream(b"data: a\n\n"))
    http = sse.new_client(follow_redirects=True)
    try:
        run = await sse.run(
            server.url(),
            client=http,
            reconnect=False,
            headers={"Proxy-Authorization": "Basic cHJveHk6c2VjcmV0"},
        )
    finally:
        await sse.close_client(http)
    assert run.data == ["a"]
    assert server.requests[0].headers["proxy-authorization"] == "Basic cHJveHk6c2VjcmV0"
    assert "proxy-authorization" not in elsewhere.requests[0].headers
