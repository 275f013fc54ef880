"""Resumable generations: an answer produced apart from any request, into a channel.

A generation runs as a task of its own in the server process and publishes the answer
into a broadcast channel, whose history keeps it. Any number of streams follow that
channel: a dropped one resumes with Last-Event-ID, mid-answer, without a second call
to the provider; another tab can watch the same answer. A client leaving does not
stop the generation; ``astop()`` does, from any process the channel layer reaches.

Tokens go to history as fast as it takes them: whatever arrived while the previous
write ran is published as one ``token`` event (a refusal's pieces, as one ``refusal``
event). A model streaming faster than the database writes costs one write per write
time, not one per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import aclosing

from asgiref.sync import async_to_sync

from django_sse import conf
from django_sse.broadcast import _history
from django_sse.broadcast._channels import ANSWER_PREFIX, group_name
from django_sse.broadcast._history import StoredEvent
from django_sse.broadcast._hub import FOLLOW_MESSAGE, STOP_MESSAGE, Hub, get_hub
from django_sse.broadcast._layer import get_layer
from django_sse.broadcast._publish import publish_event
from django_sse.llm import _records
from django_sse.llm._formats import NativeFormat
from django_sse.llm._mend import answer_from
from django_sse.llm._provider import Provider
from django_sse.llm._types import Message, ProviderError
from django_sse.llm._watch import AnswerWatch
from django_sse.llm.models import GenerationOutcome
from django_sse.protocol import Event
from django_sse.stats import Outcome

__all__ = [
    "RunningGeneration",
    "astop",
    "channel_for",
    "following",
    "is_generation_id",
    "last_event",
    "stop",
]

logger = logging.getLogger("django_sse")

# The events that end an answer.
ENDINGS = ("done", "error")
# The events that carry text: consecutive ones of one name are published as one.
TEXTS = ("token", "refusal")

_ID = re.compile(r"[A-Za-z0-9_-]{22}")
# Generations running in this process; a task only weakly referenced could be
# garbage collected mid-answer.
_running: set[asyncio.Task[None]] = set()


def is_generation_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def channel_for(generation_id: str) -> str:
    return ANSWER_PREFIX + generation_id


def stop(generation_id: str) -> None:
    """``astop()`` for sync code (a view, a Celery task, the shell)."""
    async_to_sync(astop)(generation_id)


async def astop(generation_id: str) -> None:
    """Ask the generation to stop, wherever it runs; its answer ends with a ``done``
    event whose finish reason is ``stopped``."""
    channel = channel_for(generation_id)
    await get_layer().group_send(group_name(channel), {"type": STOP_MESSAGE, "channel": channel})


class RunningGeneration:
    """One answer being produced into ``channel``, in this process.

    It follows its own channel through the hub, as a stream would, to hear a stop and
    its followers' heartbeats sent from any process; the events themselves it ignores.
    It stops by itself when nobody has followed it for LLM_GENERATION_ABANDON_AFTER
    seconds, or once it has run for LLM_GENERATION_TIMEOUT seconds, and records how it
    ended in its Generation row (see _records.py).
    """

    def __init__(
        self, provider: Provider, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.channel = channel_for(self.id)
        self.channels: tuple[str, ...] = (self.channel,)
        # For the hub: a generation is nobody's stream, and revoke() does not reach it.
        self.user: str | None = None
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
        # Why it was stopped before its end ("stopped", "abandoned", "timeout"), if it was.
        self._stop_reason: str | None = None
        self._failed = False
        self._recorded = False
        self._followed_at = 0.0

    async def start(self) -> None:
        """Publish the opening ``start`` event, then produce the rest in the background.

        The channel exists once this returns, so a stream of it can start at once, and
        the generation already listens for a stop. Its Generation row must exist.
        """
        hub = get_hub()
        await hub.subscribe(self)
        try:
            opening = {"model": self._provider.model}
            await publish_event(self.channel, opening, event="start", answer=True)
        except BaseException:
            await hub.unsubscribe(self)
            raise
        loop = asyncio.get_running_loop()
        self._followed_at = loop.time()
        # A fresh context: the generation outlives the request that started it.
        task = contextvars.Context().run(loop.create_task, self._run(hub))
        _running.add(task)
        task.add_done_callback(_running.discard)

    # The hub's side.

    def push(self, stored: StoredEvent) -> bool:
        return True

    def end(self, outcome: Outcome) -> None:
        """Revocation is for streams; a generation only stops when asked to."""

    def stop(self, reason: str = GenerationOutcome.STOPPED) -> None:
        # An answer whose ending is already on its way is not stopped any more.
        if self._stop_reason is None and not self._ended:
            self._stop_reason = reason
        if self._producer is not None:
            self._producer.cancel()

    def followed(self) -> None:
        """A follower's heartbeat (see following())."""
        self._followed_at = asyncio.get_running_loop().time()

    # The generation itself.

    async def _run(self, hub: Hub) -> None:
        watchdog = asyncio.get_running_loop().create_task(self._watch())
        try:
            self._producer = asyncio.get_running_loop().create_task(self._produce())
            self._producer.add_done_callback(self._produced)
            if self._stop_reason is not None:
                self._producer.cancel()
            await self._publish()
        except asyncio.CancelledError:
            # The event loop is stopping under the answer (the server stops): it ends
            # unfinished, without its last event.
            self._failed = True
            raise
        except Exception:
            logger.exception("Publishing generation %s failed", self.id)
            await self._undeliverable()
        finally:
            watchdog.cancel()
            if self._producer is not None:
                self._producer.cancel()
            await hub.unsubscribe(self)
            # Unless publishing the ending did (see _publish()).
            await self._record_end()

    async def _watch(self) -> None:
        """Stop the answer once nobody follows it, or once it has run too long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(conf.get("LLM_GENERATION_TIMEOUT"))
        abandon_after = conf.get("LLM_GENERATION_ABANDON_AFTER")
        while True:
            now = loop.time()
            if now >= deadline:
                self.stop(GenerationOutcome.TIMEOUT)
                return
            wake = deadline
            if abandon_after is not None:
                abandoned_at = self._followed_at + float(abandon_after)
                if now >= abandoned_at:
                    self.stop(GenerationOutcome.ABANDONED)
                    return
                wake = min(wake, abandoned_at)
            await asyncio.sleep(wake - now)

    async def _record_end(self) -> None:
        if self._recorded:
            return
        self._recorded = True
        if self._stop_reason is not None:
            outcome = GenerationOutcome(self._stop_reason)
        else:
            outcome = GenerationOutcome.ERROR if self._failed else GenerationOutcome.COMPLETED
        await _history.in_worker(_records.finish, self.id, outcome)

    async def _undeliverable(self) -> None:
        """End an answer whose next event could not be published (its history's database
        failed): its followers would wait for an end that never comes, and the model
        would go on writing what nobody can read. So the model is stopped, the row
        records the failure, and the followers get an ``error`` event, if history takes
        one now."""
        self._ended = self._failed = self._recorded = True
        if self._producer is not None:
            self._producer.cancel()
        record = functools.partial(_records.finish, overrule=True)
        await self._attempt(_history.in_worker(record, self.id, GenerationOutcome.ERROR))
        [failure] = self._format.error(_failed("The answer failed on the server."))
        await self._attempt(
            publish_event(self.channel, failure.data, event=failure.event, answer=True)
        )

    async def _attempt(self, step: Awaitable[object]) -> None:
        """A step of ending a failed answer: one that fails too must not skip the next."""
        try:
            await step
        except Exception:
            logger.exception("Ending generation %s, which could not be published, failed", self.id)

    async def _produce(self) -> None:
        answer = self._format
        watch = AnswerWatch(self._provider.model, time.monotonic())
        try:
            chunks = answer_from(self._provider, self._messages, max_tokens=self._max_tokens)
            async with aclosing(chunks):
                async for chunk in chunks:
                    watch.see(chunk)
                    self._add(answer.chunk(chunk))
        except ProviderError as error:
            self._failed = True
            self._add(answer.error(error))
        except Exception:
            self._failed = True
            logger.exception("Generation %s failed", self.id)
            self._add(answer.error(_failed("The answer failed on the server.")))

    def _produced(self, producer: asyncio.Task[None]) -> None:
        """Make sure the answer ends with done or error, however the producer ended.

        A producer cancelled before it ever ran (stopped at once) never reaches an
        except clause of its own, so the ending is added here.
        """
        if not self._ended:
            if producer.cancelled():
                stopped = {
                    "finish_reason": self._stop_reason or GenerationOutcome.STOPPED,
                    "usage": None,
                    "model": self._format.model,
                }
                self._add([Event(event="done", data=stopped)])
            else:
                self._failed = True
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
                if event.event in ENDINGS:
                    # First: whoever has seen the answer end finds its row ended too.
                    await self._record_end()
                await publish_event(self.channel, event.data, event=event.event, answer=True)
            if self._finished and not self._pending:
                return


@contextlib.asynccontextmanager
async def following(generation_id: str) -> AsyncIterator[None]:
    """Tell the generation, wherever it runs, that a stream follows it, until this exits.

    A heartbeat through the channel layer, three times per abandon period: a follower
    in a process that dies stops sending, and one lost message is not enough to make
    the answer look abandoned.
    """
    abandon_after = conf.get("LLM_GENERATION_ABANDON_AFTER")
    if abandon_after is None:
        yield
        return
    channel = channel_for(generation_id)
    message = {"type": FOLLOW_MESSAGE, "channel": channel}

    async def beat() -> None:
        layer = get_layer()
        while True:
            try:
                await layer.group_send(group_name(channel), message)
            except Exception:
                logger.exception("Telling generation %s it is followed failed", generation_id)
            await asyncio.sleep(float(abandon_after) / 3)

    task = asyncio.get_running_loop().create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def _failed(message: str) -> ProviderError:
    return ProviderError("upstream_error", message)


def _joined_tokens(events: list[Event]) -> list[Event]:
    """Consecutive token events as one, and consecutive refusal events as one."""
    joined: list[Event] = []
    for event in events:
        previous = joined[-1] if joined else None
        if event.event in TEXTS and previous is not None and previous.event == event.event:
            text = previous.data["text"] + event.data["text"]
            joined[-1] = Event(event=event.event, data={"text": text})
        else:
            joined.append(event)
    return joined


async def last_event(generation_id: str) -> StoredEvent | None:
    """The generation's latest event in history; None if it has none."""
    return await _history.in_worker(_history.last, channel_for(generation_id))
