"""tests.asgi's application (django_sse's get_asgi_application()), journaling each stream.

For requests to the race stream it records ``request_start``, ``disconnect`` when the
application receives ``http.disconnect``, and ``request_end`` when the application
returns or raises: after that, nothing Django awaited for this request is still running.
Everything else passes through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from django_sse._request_channels import Receive, Scope, Send
from tests.asgi import application as inner
from tests.lifecycle import journal

STREAM_PATH = "/races/stream/"


def _token(scope: Scope) -> str | None:
    if scope["type"] != "http" or scope["path"] != STREAM_PATH:
        return None
    tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("t")
    return tokens[0] if tokens else None


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    token = _token(scope)
    if token is None:
        await inner(scope, receive, send)
        return

    async def receiving() -> Mapping[str, Any]:
        message = await receive()
        if message["type"] == "http.disconnect":
            journal.record(token, "disconnect")
        return message

    journal.record(token, "request_start")
    ended = "returned"
    try:
        await inner(scope, receiving, send)
    except BaseException as exc:
        ended = type(exc).__name__
        raise
    finally:
        journal.record(token, "request_end", ended)
