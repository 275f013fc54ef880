"""Following redirects as a browser's EventSource does (the Fetch standard's rules).

httpx builds each hop's request (a 303, and a POST answered with 301 or 302, become a
GET without a body; 307 and 308 keep the method and the body; every header the caller
set goes along, Last-Event-ID included; cookies come from the client's jar, for the
hop's own domain). This module bounds the chain, names a loop, and keeps credentials at
home: once the chain leaves the origin it started at, a hop carries no Authorization or
Proxy-Authorization, no ``auth`` of the client, and none of the jar's cookies that have
no domain (they would match any host), unless the caller asked to send them everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

__all__ = ["CREDENTIAL_HEADERS", "Hop", "SSERedirectError", "next_hop"]

CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SSERedirectError(Exception):
    """A redirect loop, or more redirects than ``max_redirects``; ``urls`` is the chain."""

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
    chain: list[str],
    limit: int,
    keep_credentials: bool,
    cookies: httpx.Cookies,
) -> Hop:
    """The hop to where ``response`` redirects; ``chain`` (the URLs so far) grows.
    ``cookies`` is the client's jar."""
    request = response.next_request
    assert request is not None, "only called for a response with a redirect location"
    url = str(request.url)
    looped = url in chain
    chain.append(url)
    if looped:
        raise SSERedirectError("Redirect loop", list(chain))
    if len(chain) - 1 > limit:
        raise SSERedirectError(f"More than {limit} redirects", list(chain))
    # A chain that went elsewhere and came back stays stripped, as a browser's does.
    credentials = keep_credentials or len({_origin(httpx.URL(hop)) for hop in chain}) == 1
    sent = response.request.headers
    for name in CREDENTIAL_HEADERS:
        if not credentials:
            request.headers.pop(name, None)
        elif name in sent:  # httpx drops it for any other origin, even a caller's choice
            request.headers[name] = sent[name]
    if not credentials and any(not cookie.domain for cookie in cookies.jar):
        _send_domain_cookies_only(request, cookies)
    return Hop(request, credentials)


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
