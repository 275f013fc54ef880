"""Following redirects as a browser's EventSource does (the Fetch standard's rules).

httpx builds each hop's request (a 303, and a POST answered with 301 or 302, become a
GET without a body; 307 and 308 keep the method and the body; every header the caller
set goes along, Last-Event-ID included; cookies come from the client's jar, for the
hop's own domain). This module bounds the chain, names a loop, and keeps credentials at
home: a hop to another origin drops Authorization and Proxy-Authorization, unless the
caller asked to send them everywhere.
"""

from __future__ import annotations

import httpx

__all__ = ["CREDENTIAL_HEADERS", "SSERedirectError", "next_hop"]

CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SSERedirectError(Exception):
    """A redirect loop, or more redirects than ``max_redirects``; ``urls`` is the chain."""

    def __init__(self, message: str, urls: list[str]) -> None:
        self.urls = urls
        super().__init__(f"{message}: {' -> '.join(urls)}")


def next_hop(
    response: httpx.Response, chain: list[str], limit: int, keep_credentials: bool
) -> httpx.Request:
    """The request for where ``response`` redirects; ``chain`` (the URLs so far) grows."""
    request = response.next_request
    assert request is not None, "only called for a response with a redirect location"
    url = str(request.url)
    looped = url in chain
    chain.append(url)
    if looped:
        raise SSERedirectError("Redirect loop", list(chain))
    if len(chain) - 1 > limit:
        raise SSERedirectError(f"More than {limit} redirects", list(chain))
    sent = response.request.headers
    for name in CREDENTIAL_HEADERS:
        if _origin(request.url) != _origin(response.request.url) and not keep_credentials:
            request.headers.pop(name, None)
        elif name in sent:  # httpx drops it for any other origin, even a caller's choice
            request.headers[name] = sent[name]
    return request


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)
