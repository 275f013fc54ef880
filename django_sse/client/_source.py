"""One logical stream across its connections, minus the I/O: requests, answers, waits.

The sync and async event sources differ only in how they send, read and sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from django_sse.client._policy import ClientStatus, ReconnectPolicy, SSEResponseError
from django_sse.protocol import EventParser

__all__ = ["ERROR_BODY_BYTES", "SourceOptions", "StreamState"]

ERROR_BODY_BYTES = 1024


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


ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


class StreamState(Generic[ClientT]):
    def __init__(self, url: str, options: SourceOptions, client: ClientT) -> None:
        self.url = url
        self._client: ClientT = client
        # The response being read, so leaving the context manager can close it at once.
        self._response: httpx.Response | None = None
        self._options = options
        self._policy = options.policy()
        self._parser = EventParser(last_event_id=options.last_event_id)
        self._closed = False
        self._finished = False

    @property
    def last_event_id(self) -> str:
        return self._parser.last_event_id

    @property
    def reconnection_time(self) -> int | None:
        """The server's last valid ``retry``, in milliseconds."""
        return self._parser.reconnection_time

    def close(self) -> None:
        """Stop: the iteration ends after the current event."""
        self._closed = True

    def _request(self) -> httpx.Request:
        # Each connection is a new stream: whatever half-event the last one left is gone.
        self._parser = EventParser(
            last_event_id=self._parser.last_event_id,
            reconnection_time=self._parser.reconnection_time,
        )
        options = self._options
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        headers.update(options.headers or {})
        if self._parser.last_event_id:
            headers["Last-Event-ID"] = self._parser.last_event_id
        return self._client.build_request(
            options.method,
            self.url,
            headers=headers,
            json=options.json,
            data=options.data,
            timeout=options.timeout,
        )

    def _is_event_stream(self, response: httpx.Response) -> bool:
        content_type = response.headers.get("content-type", "")
        return response.status_code == 204 or (
            response.status_code == 200 and content_type.startswith("text/event-stream")
        )

    def _refusal(self, response: httpx.Response, body: bytes) -> SSEResponseError:
        content_type = response.headers.get("content-type", "")
        return SSEResponseError(response.status_code, content_type, body[:ERROR_BODY_BYTES])

    def _opened(self, response: httpx.Response) -> bool:
        """Whether to read events from this response; False after 204, which ends it all."""
        if response.status_code == 204:
            self._finished = True
            self._policy.report(self._status("closed"))
            return False
        self._policy.connected()
        self._policy.report(self._status("connected"))
        return True

    def _delay(self, error: BaseException | None) -> float | None:
        """Seconds until the next connection, or None when the stream is over.

        Re-raises a network error when the stream may not be reopened.
        """
        if self._closed or self._finished:
            return None
        if not self._policy.may_reconnect:
            self._policy.report(self._status("closed", error=error))
            if error is not None:
                raise error
            return None
        try:
            delay = self._policy.next_delay(self._parser.reconnection_time, error)
        except Exception as given_up:
            self._policy.report(self._status("gave_up", error=given_up))
            raise
        self._policy.report(self._status("reconnecting", delay=delay, error=error))
        return delay

    def _status(self, state: str, **details: Any) -> ClientStatus:
        return ClientStatus(
            state,
            self.url,
            attempt=self._policy.failures,
            last_event_id=self._parser.last_event_id,
            **details,
        )
