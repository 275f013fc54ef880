"""What a stream did and why it ended: value types every layer shares.

A leaf module: the engine fills these in, the stream log and the views read them, and
broadcast and llm name outcomes, without any of them importing another's module.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["OnClose", "Outcome", "StreamObserver", "StreamStats"]


class Outcome(str, enum.Enum):
    """Why a stream ended. Exactly one is recorded per stream."""

    COMPLETED = "completed"
    CLIENT_DISCONNECTED = "client_disconnected"
    ERROR = "error"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    # Broadcast: the subscriber fell a whole queue behind, or lost access to a channel.
    SLOW_CONSUMER = "slow_consumer"
    REVOKED = "revoked"
    # Broadcast in Pushpin mode: handed to Pushpin, which holds the connection from here.
    HELD = "held"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class StreamStats:
    """What one stream did: ``SSEResponse.stats``, also handed to stream observers."""

    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    events: int = 0
    bytes: int = 0
    last_event_id: str | None = None
    outcome: Outcome | None = None
    error: BaseException | None = None
    # Filled in by streams that relay a language model's answer (django_sse.llm).
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Seconds from the request to the answer's first token.
    time_to_first_token: float | None = None


OnClose = Callable[[Outcome], Awaitable[None]]


class StreamObserver(Protocol):
    """Told when a stream starts and after it ended; e.g. the StreamLog tracker.

    The engine knows observers only by this interface, so it never imports what
    watches it. An optional ``description`` names the observer in the log line of a
    ``closed()`` that failed or overran.
    """

    def opened(self, stats: StreamStats) -> None:
        """Must not block: schedule any I/O as a task. If it raises, the stream ends
        at once with outcome ``error`` (logged), and every observer's ``closed()`` and
        ``on_close`` still run."""

    async def closed(self, stats: StreamStats) -> None:
        """Runs after the source's cleanup and before ``on_close``."""
