"""Following redirects as a browser's EventSource does (the Fetch standard's rules).

httpx builds each hop's request (a 303, and a POST answered with 301 or 302, become a
GET without a body; 307 and 308 keep the method and the body; every header the caller
set goes along, Last-Event-ID included; cookies come from the client's jar, for the
hop's own domain). This module bounds the chain, names a loop, refuses a Location no
request can be sent to, and keeps credentials at home: once the chain leaves the origin
it started at, a hop carries no Authorization or Proxy-Authorization, no Cookie header of
the caller's, no ``auth`` of the client, and none of the jar's cookies that have no
domain (they would match any host), unless the caller asked to send them everywhere.
Until then, a Cookie header of the caller's goes along, as it went with the first
request: httpx would rebuild it from the jar.

A loop is a request sent again as it was: same method, URL and cookies. A redirect back
to the same URL that set a cookie, or that turned a POST into a GET, asks something new,
and a browser follows it (Fetch counts hops and knows no loops).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from django_sse.client._options import check_url

__all__ = ["CREDENTIAL_HEADERS", "Hop", "SSERedirectError", "next_hop", "unreadable_location"]

CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SSERedirectError(Exception):
    """A redirect loop, more redirects than ``max_redirects``, or a ``Location`` that no
    request can be sent to; ``urls`` is the chain."""

    def __init__(self, message: str, urls: list[str]) -> None:
        self.urls = urls
        super().__init__(f"{message}: {' -> '.join(urls)}")


@dataclass(frozen=True)
class Hop:
    """A request to send, and whether the caller's credentials go with it: the client
    applies its ``auth`` at sending time, so the request alone cannot say."""

    request: httpx.Request
    credentials: bool = True


def next_hop(
    response: httpx.Response,
    chain: list[httpx.Request],
    limit: int,
    keep_credentials: bool,
    cookies: httpx.Cookies,
    cookie_header: str | None,
) -> Hop:
    """The hop to where ``response`` redirects; ``chain`` (the requests so far) grows.
    ``cookies`` is the client's jar, ``cookie_header`` the Cookie header the caller set."""
    request = response.next_request
    assert request is not None, "only called for a response with a redirect location"
    _check_location(request.url, chain)
    # A chain that went elsewhere and came back stays stripped, as a browser's does.
    origins = {_origin(hop.url) for hop in [*chain, request]}
    credentials = keep_credentials or len(origins) == 1
    sent = response.request.headers
    for name in CREDENTIAL_HEADERS:
        if not credentials:
            request.headers.pop(name, None)
        elif name in sent:  # httpx drops it for any other origin, even a caller's choice
            request.headers[name] = sent[name]
    if credentials and cookie_header is not None:
        request.headers["cookie"] = cookie_header
    elif not credentials and any(not cookie.domain for cookie in cookies.jar):
        _send_domain_cookies_only(request, cookies)
    # Compared as they will be sent: after the cookies are settled.
    looped = any(_same(request, earlier) for earlier in chain)
    chain.append(request)
    urls = [str(hop.url) for hop in chain]
    if looped:
        raise SSERedirectError("Redirect loop", urls)
    if len(chain) - 1 > limit:
        raise SSERedirectError(f"More than {limit} redirects", urls)
    return Hop(request, credentials)


def unreadable_location(error: Exception, chain: list[httpx.Request]) -> SSERedirectError | None:
    """The redirect error for ``error``, if it is httpx failing to read a redirect's
    Location while it sent the last request of ``chain``: None for any other error.

    httpx reads the Location before it hands the answer over, and raises from the send:
    ``RemoteProtocolError`` (a transport error, which would be retried for ever) for one
    it cannot parse, ``InvalidURL`` or a ``UnicodeError`` for one whose host it cannot
    decode. A URL the client asks is checked before it is sent, so these come from a
    Location only. The answer is unusable, not the network: no retry mends it.
    """
    if isinstance(error, httpx.RemoteProtocolError) and isinstance(
        error.__context__, httpx.InvalidURL
    ):
        reason: Exception = error.__context__
    elif isinstance(error, (httpx.InvalidURL, UnicodeError)):
        reason = error
    else:
        return None
    return SSERedirectError(
        f"Redirect to a Location that cannot be read ({reason})", [str(r.url) for r in chain]
    )


def _check_location(url: httpx.URL, chain: list[httpx.Request]) -> None:
    """Refuse a hop no request can be sent to, as Fetch refuses one that is not HTTP(S):
    a host no resolver takes, a port past 65535 (it wrapped), another scheme."""
    try:
        check_url(url)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        urls = [str(request.url) for request in chain]
        raise SSERedirectError(
            f"Redirect to a Location that cannot be asked ({exc})", urls
        ) from None


def _same(request: httpx.Request, earlier: httpx.Request) -> bool:
    """Whether ``request`` asks again what ``earlier`` asked: a server answers it the same."""
    return (
        request.method == earlier.method
        and request.url == earlier.url
        and request.headers.get("cookie") == earlier.headers.get("cookie")
    )


def _send_domain_cookies_only(request: httpx.Request, cookies: httpx.Cookies) -> None:
    """Rebuild the Cookie header without the jar's cookies that have no domain: set as
    ``httpx.Client(cookies={...})`` sets them, they were meant for the caller's server."""
    bound = httpx.Cookies()
    for cookie in cookies.jar:
        if cookie.domain:
            bound.jar.set_cookie(cookie)
    request.headers.pop("cookie", None)
    bound.set_cookie_header(request)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)
