"""When to reconnect and how long to wait: decisions shared by the sync and async clients.

The spec's rule is to wait the server's ``retry`` (3 s unless it sent one) and reconnect
with ``Last-Event-ID``. On top of it, consecutive failures back off exponentially with
jitter up to a cap, so clients do not stampede a server that is coming back up. The cap
bounds the server's ``retry`` too: a client that waits at most ``backoff_cap`` must not
sleep for an hour, or past what ``threading`` can wait, because a server said so.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_BACKOFF_CAP",
    "MIN_BACKOFF",
    "ClientStatus",
    "ReconnectPolicy",
    "SSEConnectionError",
    "SSEResponseError",
]

logger = logging.getLogger("django_sse.client")

DEFAULT_RETRY_MS = 3000
# The least that consecutive failures back off from, in seconds: a server that sends
# ``retry: 0`` wants its clients back at once after a stream ends, not a tight loop of
# attempts while it is down.
MIN_BACKOFF = 0.1
# The largest backoff_cap: one day waits on every platform (threading.TIMEOUT_MAX is
# about 49 days on Windows), and a longer pause is a job for a scheduler.
MAX_BACKOFF_CAP = 86400.0
# 2.0 ** 1024 overflows a float; 64 doublings of MIN_BACKOFF pass any allowed cap.
_MAX_DOUBLINGS = 64


class SSEResponseError(Exception):
    """The server answered, but not with an event stream: a status other than 200 (or
    204, which ends the stream for good), or another content type.

    Not retried, unless it is a 429 or 503 with ``Retry-After`` (``retry_after``, in
    seconds): the server refused the stream before starting it and said when to come
    back, so the client does, also for a POST.
    """

    def __init__(
        self, status_code: int, content_type: str, body: bytes, retry_after: float | None = None
    ) -> None:
        self.status_code = status_code
        self.content_type = content_type
        self.body = body
        self.retry_after = retry_after
        super().__init__(
            f"Expected 200 text/event-stream, got {status_code} "
            f"{content_type or '(no content type)'}: {body[:200]!r}"
        )


class SSEConnectionError(Exception):
    """Reconnecting was given up after ``max_retries`` consecutive failures."""


@dataclass(frozen=True)
class ClientStatus:
    """One decision of the client, handed to ``on_status`` and logged.

    ``state``: ``"connected"``, ``"reconnecting"`` (in ``delay`` seconds), ``"closed"``
    (HTTP 204, or the stream ended and may not be reopened) or ``"gave_up"``.
    """

    state: str
    url: str
    attempt: int = 0
    delay: float | None = None
    error: BaseException | None = None
    last_event_id: str = ""


@dataclass
class ReconnectPolicy:
    reconnect: bool = True
    max_retries: int | None = None
    backoff_cap: float = 30.0
    # A POST is not sent again unless asked: it may start work that costs money.
    repeat_request: bool = True
    on_status: Callable[[ClientStatus], Any] | None = None
    failures: int = 0

    @property
    def may_reconnect(self) -> bool:
        return self.reconnect and self.repeat_request

    def connected(self) -> None:
        self.failures = 0

    def next_delay(self, retry_ms: int | None, error: BaseException | None) -> float:
        """Seconds before the next attempt; raises once ``max_retries`` is used up."""
        self.failures += 1
        if self.max_retries is not None and self.failures > self.max_retries:
            raise SSEConnectionError(
                f"Gave up after {self.max_retries} reconnection attempt(s)"
            ) from error
        retry = DEFAULT_RETRY_MS if retry_ms is None else retry_ms
        # Capped before dividing: a retry may have any number of digits, and an int that
        # large does not fit in a float.
        base = min(retry, self.backoff_cap * 1000) / 1000
        if self.failures == 1:
            return base
        doublings = min(self.failures - 1, _MAX_DOUBLINGS)
        ceiling = min(self.backoff_cap, max(base, MIN_BACKOFF) * 2.0**doublings)
        return random.uniform(ceiling / 2, ceiling)

    def report(self, status: ClientStatus) -> None:
        if status.state == "reconnecting":
            logger.info(
                "%s: %s; reconnecting in %.3f s (attempt %d)",
                status.url,
                status.error or "the server ended the stream",
                status.delay,
                status.attempt,
            )
        elif status.state == "gave_up":
            logger.warning("%s: gave up reconnecting (%s)", status.url, status.error)
        else:
            logger.info("%s: %s", status.url, status.state)
        if self.on_status is not None:
            self.on_status(status)
