"""Credentials that come with the caller's httpx client, through redirects: its ``auth``,
its cookies, and its own redirect settings, which must not bypass the client's rules.
Each scenario on ``connect()`` and ``aconnect()``, against two scripted raw HTTP servers
(two origins: the same host, another port)."""

from __future__ import annotations

import base64

import httpx
import pytest

from django_sse.client import SSERedirectError, SSEResponseError
from tests.client.drivers import Driver
from tests.client.scripted_server import ScriptedServer, event_stream, moved

BASIC = "Basic " + base64.b64encode(b"user:secret").decode()


def cookies_of(headers: dict[str, str]) -> set[str]:
    return set(filter(None, headers.get("cookie", "").split("; ")))


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
    run = await sse.run_through(
        {"auth": ("user", "secret")},
        server.url(),
        reconnect=False,
        redirect_credentials=redirect_credentials,
    )
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
    run = await sse.run_through(
        {"cookies": cookies},
        server.url(),
        reconnect=False,
        redirect_credentials=redirect_credentials,
    )
    assert run.data == ["a"]
    both = {"session=s", "shared=x"}
    assert [cookies_of(request.headers) for request in server.requests] == [both, both]
    away = both if redirect_credentials else {"shared=x"}
    assert cookies_of(elsewhere.requests[0].headers) == away


async def test_the_clients_follow_redirects_does_not_override_the_option(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(moved("301 Moved", "/moved"), event_stream(b"data: never\n\n"))
    run = await sse.run_through(
        {"follow_redirects": True}, server.url(), follow_redirects=False, expect=SSEResponseError
    )
    assert isinstance(run.error, SSEResponseError)
    assert run.error.status_code == 301
    assert server.connections == 1


async def test_the_clients_follow_redirects_does_not_lift_max_redirects(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(*(moved("307 Again", f"/hop{n}") for n in range(3)))
    run = await sse.run_through(
        {"follow_redirects": True}, server.url(), max_redirects=1, expect=SSERedirectError
    )
    assert "More than 1 redirects" in str(run.error)
    assert server.connections == 2


async def test_the_clients_follow_redirects_does_not_leak_proxy_authorization(
    sse: Driver, server: ScriptedServer, elsewhere: ScriptedServer
) -> None:
    # httpx's own redirect following drops Authorization for another origin, not
    # Proxy-Authorization.
    server.play(moved("307 Elsewhere", elsewhere.url("/there")))
    elsewhere.play(event_stream(b"data: a\n\n"))
    run = await sse.run_through(
        {"follow_redirects": True},
        server.url(),
        reconnect=False,
        headers={"Proxy-Authorization": "Basic cHJveHk6c2VjcmV0"},
    )
    assert run.data == ["a"]
    assert server.requests[0].headers["proxy-authorization"] == "Basic cHJveHk6c2VjcmV0"
    assert "proxy-authorization" not in elsewhere.requests[0].headers


@pytest.mark.parametrize("redirect_credentials", [False, True])
async def test_a_cookie_header_of_the_caller_goes_where_credentials_go(
    sse: Driver, server: ScriptedServer, elsewhere: ScriptedServer, redirect_credentials: bool
) -> None:
    # httpx rebuilt every hop's Cookie header from the client's jar: the caller's own was
    # dropped at the first redirect, even to the same origin, as a browser never drops
    # cookies. It goes along as Authorization does: to the same origin, and elsewhere
    # only when asked. Where it goes, it stands for the jar, as on the first request.
    jar = httpx.Cookies()
    jar.set("shared", "x", domain="127.0.0.1")  # both servers' host
    server.play(moved("308 Here", "/here"), moved("307 Elsewhere", elsewhere.url("/there")))
    elsewhere.play(event_stream(b"data: a\n\n"))
    run = await sse.run_through(
        {"cookies": jar},
        server.url(),
        headers={"Cookie": "session=s; theme=dark"},
        reconnect=False,
        redirect_credentials=redirect_credentials,
    )
    assert run.data == ["a"]
    mine = {"session=s", "theme=dark"}
    assert [cookies_of(request.headers) for request in server.requests] == [mine, mine]
    away = mine if redirect_credentials else {"shared=x"}
    assert cookies_of(elsewhere.requests[0].headers) == away


async def test_a_cookie_header_of_the_clients_own_goes_along_to_the_same_origin(
    sse: Driver, server: ScriptedServer, elsewhere: ScriptedServer
) -> None:
    server.play(moved("302 Here", "/here"), moved("302 Elsewhere", elsewhere.url("/there")))
    elsewhere.play(event_stream(b"data: a\n\n"))
    run = await sse.run_through({"headers": {"Cookie": "session=s"}}, server.url(), reconnect=False)
    assert run.data == ["a"]
    assert [request.headers.get("cookie") for request in server.requests] == ["session=s"] * 2
    assert "cookie" not in elsewhere.requests[0].headers
