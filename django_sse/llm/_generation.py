"""Resumable generations: an answer produced apart from any request, into a channel.

A generation runs as a task of its own in the server process and publishes the answer
into a broadcast channel, whose history keeps it. Any number of streams follow that
channel: a dropped one resumes with Last-Event-ID, mid-answer, without a second call
to the provider; another tab can watch the same answer. A client leaving does not
stop the generation; ``astop()`` does, from any process the channel layer reaches.

Tokens go to history as fast as it takes them: whatever arrived while the previous
write ran is published as one ``token`` event. A model streaming faster than the
database writes costs one write per write time, not one per token.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import secrets
from collections.abc import Sequence
from contextlib import aclosing

from asgiref.sync import async_to_sync

from django_sse.broadcast import _history
from django_sse.broadcast._channels import group_name
from django_sse.broadcast._history import StoredEvent
from django_sse.broadcast._hub import STOP_MESSAGE, Hub, get_hub
from django_sse.broadcast._layer import get_layer
from django_sse.broadcast._publish import apublish
from django_sse.llm._formats import NativeFormat
from django_sse.llm._provider import Provider
from django_sse.llm._types import Message, ProviderError
from django_sse.protocol import Event
from django_sse.stats import Outcome

__all__ = ["Generation", "astop", "channel_for", "edges", "is_generation_id", "stop"]

logger = logging.getLogger("django_sse")

CHANNEL_PREFIX = "llm."
# The events that end an answer.
ENDINGS = ("done", "error")

_ID = re.compile(r"[A-Za-z0-9_-]{22}")
# Generations running in this process; a task only weakly referenced could be
# garbage collected mid-answer.
_running: set[asyncio.Task[None]] = set()


def is_generation_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def channel_for(generation_id: str) -> str:
    return CHANNEL_PREFIX + generation_id


def stop(generation_id: str) -> None:
    """``astop()`` for sync code (a view, a Celery task, the shell)."""
    async_to_sync(astop)(generation_id)


async def astop(generation_id: str) -> None:
    """Ask the generation to stop, wherever it runs; its answer ends with a ``done``
    event whose finish reason is ``stopped``."""
    channel = channel_for(generation_id)
    await get_layer().group_send(group_name(channel), {"type": STOP_MESSAGE, "channel": channel})


class Generation:
    """One answer being produced into ``channel``.

    It follows its own channel through the hub, as a stream would, to hear a stop
    sent from any process; the events themselves it ignores.
    """

    def __init__(
        self,
        provider: Provider,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        owner: str | None = None,
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.channel = channel_for(self.id)
        self.channels: tuple[str, ...] = (self.channel,)
        self.user: str | None = None
        # The primary key of the user who started it, if logged in: only they may
        # follow or stop it (see _resumable.py).
        self.owner = owner
        self._provider = provider
        self._messages = list(messages)
        self._max_tokens = max_tokens
        self._format = NativeFormat(model=provider.model)
        self._pending: list[Event] = []
        self._arrived = asyncio.Event()
        # An ending (done or error) is pending or published; the producer has finished.
        self._ended = False
        self._finished = False
        self._producer: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        """Publish the opening ``start`` event, then produce the rest in the background.

        The channel exists once this returns, so a stream of it can start at once, and
        the generation already listens for a stop.
        """
        hub = get_hub()
        await hub.subscribe(self)
        try:
            opening = {"model": self._provider.model, "owner": self.owner}
            await apublish(self.channel, opening, event="start")
        except BaseException:
            await hub.unsubscribe(self)
            raise
        # A fresh context: the generation outlives the request that started it.
        loop = asyncio.get_running_loop()
        task = contextvars.Context().run(loop.create_task, self._run(hub))
        _running.add(task)
        task.add_done_callback(_running.discard)

    # The hub's side.

    def push(self, stored: StoredEvent) -> bool:
        return True

    def end(self, outcome: Outcome) -> None:
        """Revocation is for streams; a generation only stops when asked to."""

    def stop(self) -> None:
        self._stopped = True
        if self._producer is not None:
            self._producer.cancel()

    # The generation itself.

    async def _run(self, hub: Hub) -> None:
        try:
            self._producer = asyncio.get_running_loop().create_task(self._produce())
            self._producer.add_done_callback(self._produced)
            if self._stopped:
                self._producer.cancel()
            await self._publish()
        except Exception:
            logger.exception("Publishing generation %s failed", self.id)
        finally:
            if self._producer is not None:
                self._producer.cancel()
            await hub.unsubscribe(self)

    async def _produce(self) -> None:
        answer = self._format
        try:
            chunks = self._provider.stream(self._messages, max_tokens=self._max_tokens)
            async with aclosing(chunks):
                async for chunk in chunks:
                    self._add(answer.chunk(chunk))
        except ProviderError as error:
            self._add(answer.error(error))
        except Exception:
            logger.exception("Generation %s failed", self.id)
            self._add(answer.error(_failed("The answer failed on the server.")))

    def _produced(self, producer: asyncio.Task[None]) -> None:
        """Make sure the answer ends with done or error, however the producer ended.

        A producer cancelled before it ever ran (stopped at once) never reaches an
        except clause of its own, so the ending is added here.
        """
        if not self._ended:
            if producer.cancelled():
                stopped = {"finish_reason": "stopped", "usage": None, "model": self._format.model}
                self._add([Event(event="done", data=stopped)])
            else:
                self._add(self._format.error(_failed("The answer ended before it finished.")))
        self._finished = True
        self._arrived.set()

    def _add(self, events: list[Event]) -> None:
        self._pending += events
        self._ended = self._ended or any(event.event in ENDINGS for event in events)
        self._arrived.set()

    async def _publish(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            batch, self._pending = self._pending, []
            for event in _joined_tokens(batch):
                await apublish(self.channel, event.data, event=event.event)
            if self._finished and not self._pending:
                return


def _failed(message: str) -> ProviderError:
    return ProviderError("upstream_error", message)


def _joined_tokens(events: list[Event]) -> list[Event]:
    """Consecutive token events as one."""
    joined: list[Event] = []
    for event in events:
        previous = joined[-1] if joined else None
        if event.event == "token" and previous is not None and previous.event == "token":
            text = previous.data["text"] + event.data["text"]
            joined[-1] = Event(event="token", data={"text": text})
        else:
            joined.append(event)
    return joined


async def edges(generation_id: str) -> tuple[StoredEvent | None, StoredEvent | None]:
    """The generation's first and latest events in history; Nones if it has none."""
    channel = channel_for(generation_id)

    def read() -> tuple[StoredEvent | None, StoredEvent | None]:
        first = _history.read({channel: 0}, limit=1)
        return (first[0] if first else None), _history.last(channel)

    return await _history.in_worker(read)
