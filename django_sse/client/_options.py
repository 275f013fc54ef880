"""What ``connect()``, ``aconnect()`` and the command line accept, checked in one place
when they are called.

A value out of range or of the wrong type is refused with its argument's name before any
request: left alone, each showed up later, far from the mistake, or never (a negative
``max_retries`` gave up "after -1 attempts", a negative ``read_timeout`` timed out every
read and reconnected for ever, port 99999 reached port 34463, ``headers=42`` failed
deep inside httpx at the first connection, ``reconnect="no"`` reconnected, and ``data``
given with ``json`` sent the form and dropped the JSON without a word).
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import httpx

from django_sse.client._policy import MAX_BACKOFF_CAP, ClientStatus, ReconnectPolicy

__all__ = ["HTTP_SCHEMES", "MAX_READ_TIMEOUT", "SourceOptions", "check_client", "check_url"]

HTTP_SCHEMES = ("http", "https")
# The longest read_timeout: about what a socket can wait (1e10 s raises OverflowError
# at the first read). None waits for ever.
MAX_READ_TIMEOUT = 86400.0
# An HTTP token (RFC 9110): all a method or a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What h11 writes in no header value: a control character other than tab.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")
# A form field's value as httpx writes it (a bool is an int: "true" or "false").
_FORM_VALUE = (str, int, float, type(None))


@dataclass
class SourceOptions:
    """Everything ``connect()`` and ``aconnect()`` accept besides the URL and client."""

    method: str = "GET"
    headers: Mapping[str, str] | None = None
    json: Any = None
    data: Mapping[str, Any] | None = None
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
        self._check_request()
        for name in ("reconnect", "repeat_post", "follow_redirects", "redirect_credentials"):
            _flag(name, getattr(self, name))
        for name in ("on_status", "on_comment"):
            _callback(name, getattr(self, name))
        if self.max_retries is not None:
            _count("max_retries", self.max_retries)
        if self.retry is not None:
            _count("retry", self.retry, "a whole number of milliseconds")
        _count("max_redirects", self.max_redirects)
        _seconds("backoff_cap", self.backoff_cap, MAX_BACKOFF_CAP, zero=True)
        if self.read_timeout is not None:
            # Zero times out every read that has to wait: a stream would never be read.
            _seconds("read_timeout", self.read_timeout, MAX_READ_TIMEOUT, zero=False)

    def _check_request(self) -> None:
        """What goes into every request; h11 and httpx refused each of these only at
        the first connection, in their own words."""
        if not isinstance(self.method, str) or not _TOKEN.fullmatch(self.method):
            raise _wrong("method", self.method, "an HTTP method such as 'GET' or 'POST'")
        _headers(self.headers)
        if not isinstance(self.last_event_id, str):
            raise TypeError(f"last_event_id must be a str, not {self.last_event_id!r}")
        if _CONTROL.search(self.last_event_id):
            raise ValueError(
                f"last_event_id must hold no control character but tab (a header carries "
                f"it), not {self.last_event_id!r}"
            )
        if self.json is not None and self.data is not None:
            raise ValueError("json and data are both request bodies: give one of them")
        if self.json is not None:
            _json(self.json)
        if self.data is not None:
            _form(self.data)

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


def _wrong(name: str, value: object, kind: str) -> Exception:
    """The error for ``value`` given as ``name``: a TypeError for the wrong type, a
    ValueError for a value of the right one."""
    error = ValueError if isinstance(value, str) else TypeError
    return error(f"{name} must be {kind}, not {value!r}")


def _headers(headers: object) -> None:
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of names to values, not {headers!r}")
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise _wrong("header names", name, "HTTP tokens such as 'X-Token'")
        if not isinstance(value, str):
            raise TypeError(f"header {name} must be a str, not {value!r}")
        # HTTP has no agreed encoding for other text (httpx sends header values as ASCII),
        # and h11 refuses spaces at either end.
        if not value.isascii() or _CONTROL.search(value) or value != value.strip(" \t"):
            raise ValueError(
                f"header {name} must be ASCII with no control character but tab and no "
                f"space at either end, not {value!r}"
            )


def _json(value: object) -> None:
    # allow_nan=False as httpx writes it: NaN and Infinity are not JSON, and a server's
    # parser refuses them.
    try:
        jsonlib.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise type(exc)(f"json must be serializable to JSON: {exc}") from None


def _form(data: object) -> None:
    if not isinstance(data, Mapping):
        # A str or bytes was sent as a raw body, a form's way in name only.
        raise TypeError(f"data must be a mapping of form fields to values, not {data!r}")
    for name, value in data.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        # Anything else was written as its str(): "b'x'", "<object object at 0x7f...>".
        if not isinstance(name, str) or not all(isinstance(v, _FORM_VALUE) for v in values):
            raise TypeError(
                f"data must map str names to str, numbers, bools or None (or lists of "
                f"them), not {name!r}: {value!r}"
            )


def _flag(name: str, value: object) -> None:
    # A truthy stand-in is a slip: reconnect="no" reconnected.
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")


def _callback(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable, not {value!r}")


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


def check_client(client: object, kind: type[httpx.Client] | type[httpx.AsyncClient]) -> None:
    """``connect()`` sends through an ``httpx.Client``, ``aconnect()`` an ``AsyncClient``:
    the other one failed at the first request, awaiting what is not awaitable."""
    if client is not None and not isinstance(client, kind):
        raise TypeError(f"client must be an httpx.{kind.__name__} or None, not {client!r}")


def check_url(url: httpx.URL) -> None:
    """Raise for a URL no request can be sent to, before one is: ``httpx.UnsupportedProtocol``
    (as httpx raised when sending it) for one that is not http(s) or has no host,
    ``httpx.InvalidURL`` for a host or port no socket takes (httpx parses both, and the
    failure came at connecting, or never)."""
    if url.scheme not in HTTP_SCHEMES:
        raise httpx.UnsupportedProtocol(f"{url} is not http:// or https://")
    try:
        # Reading the host decodes its IDNA labels ("xn--" is none); then what the socket
        # layer does with it before connecting: an empty label ("a..b") or one over 63
        # characters raises UnicodeError there.
        host = url.host
        url.raw_host.decode("ascii").encode("idna")
    except UnicodeError as exc:  # idna's errors are UnicodeErrors
        raise httpx.InvalidURL(f"Invalid host in {url}: {exc}") from None
    if not host:
        raise httpx.UnsupportedProtocol(f"{url} is not http:// or https:// with a host")
    if url.port is not None and not 0 < url.port < 65536:
        # The resolver takes any number and wraps it: 99999 reaches port 34463.
        raise httpx.InvalidURL(f"Invalid port in {url}: {url.port} is not from 1 to 65535")
