"""What ``connect()`` and ``aconnect()`` accept, checked when they are called.

A value out of range or of the wrong type is refused with its option's name before any
request: left alone, each showed up later, far from the mistake, or never (a negative
``max_retries`` gave up "after -1 attempts", a negative ``read_timeout`` timed out
every read and reconnected for ever, and port 99999 reached port 34463).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import httpx

from django_sse.client._policy import MAX_BACKOFF_CAP, ClientStatus, ReconnectPolicy

__all__ = ["MAX_READ_TIMEOUT", "SourceOptions", "check_url"]

# The longest read_timeout: about what a socket can wait (1e10 s raises OverflowError
# at the first read). None waits for ever.
MAX_READ_TIMEOUT = 86400.0


@dataclass
class SourceOptions:
    """Everything ``connect()`` and ``aconnect()`` accept besides the URL and client."""

    method: str = "GET"
    headers: dict[str, str] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    last_event_id: str = ""
    reconnect: bool = True
    max_retries: int | None = None
    backoff_cap: float = 30.0
    read_timeout: float | None = 60.0
    repeat_post: bool = False
    on_status: Callable[[ClientStatus], Any] | None = None
    # Called with each comment line's text, in order with the events (keep-alives: "").
    on_comment: Callable[[str], Any] | None = None
    # Milliseconds before the first reconnection, until the server sends ``retry``.
    retry: int | None = None
    follow_redirects: bool = True
    max_redirects: int = 10
    # Send the caller's credentials on to another origin's redirect too: Authorization,
    # Proxy-Authorization, the client's auth and its cookies without a domain.
    redirect_credentials: bool = False

    def __post_init__(self) -> None:
        if self.max_retries is not None:
            _count("max_retries", self.max_retries)
        if self.retry is not None:
            _count("retry", self.retry, "a whole number of milliseconds")
        _count("max_redirects", self.max_redirects)
        _seconds("backoff_cap", self.backoff_cap, MAX_BACKOFF_CAP, zero=True)
        if self.read_timeout is not None:
            # Zero times out every read that has to wait: a stream would never be read.
            _seconds("read_timeout", self.read_timeout, MAX_READ_TIMEOUT, zero=False)

    @property
    def timeout(self) -> httpx.Timeout:
        # Every read waits at most read_timeout; keep-alive comments are reads too.
        return httpx.Timeout(10.0, read=self.read_timeout)

    def policy(self) -> ReconnectPolicy:
        return ReconnectPolicy(
            reconnect=self.reconnect,
            max_retries=self.max_retries,
            backoff_cap=self.backoff_cap,
            repeat_request=self.method.upper() == "GET" or self.repeat_post,
            on_status=self.on_status,
        )


def _count(name: str, value: object, kind: str = "a whole number") -> None:
    # bool is an int, but max_retries=True is a slip, not "one".
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be {kind}, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be {kind} from 0 up, not {value!r}")


def _seconds(name: str, value: object, most: float, *, zero: bool) -> None:
    if not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    seconds = float(value)
    # NaN fails every comparison, and no wait can honour infinity.
    if not (seconds >= 0 if zero else seconds > 0) or not seconds <= most:
        least = "from 0" if zero else "more than 0 and"
        raise ValueError(f"{name} must be {least} up to {most:g} seconds, not {value!r}")


def check_url(url: httpx.URL) -> None:
    """Raise ``httpx.InvalidURL`` for a URL whose host or port no socket takes; httpx
    parses both, and the failure came at connecting, or never."""
    try:
        # Reading the host decodes its IDNA labels ("xn--" is none); then what the socket
        # layer does with it before connecting: an empty label ("a..b") or one over 63
        # characters raises UnicodeError there.
        url.host  # noqa: B018
        url.raw_host.decode("ascii").encode("idna")
    except UnicodeError as exc:  # idna's errors are UnicodeErrors
        raise httpx.InvalidURL(f"Invalid host in {url}: {exc}") from None
    if url.port is not None and not 0 < url.port < 65536:
        # The resolver takes any number and wraps it: 99999 reaches port 34463.
        raise httpx.InvalidURL(f"Invalid port in {url}: {url.port} is not from 1 to 65535")
