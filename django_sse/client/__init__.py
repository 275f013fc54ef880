"""A Server-Sent Events client on httpx that reconnects and resumes; needs the
``client`` extra (``pip install django-sse-kit[client]``).

Run ``python -m django_sse.client URL`` to print a stream's events.
"""

from __future__ import annotations

from django_sse.client._async import AsyncEventSource, aconnect
from django_sse.client._policy import ClientStatus, SSEConnectionError, SSEResponseError
from django_sse.client._redirects import SSERedirectError
from django_sse.client._sync import EventSource, connect
from django_sse.protocol import MessageEvent

__all__ = [
    "AsyncEventSource",
    "ClientStatus",
    "EventSource",
    "MessageEvent",
    "SSEConnectionError",
    "SSERedirectError",
    "SSEResponseError",
    "aconnect",
    "connect",
]
