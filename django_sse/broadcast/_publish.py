"""publish() and apublish(): store an event in history, then send it through the layer,
and to Pushpin in Pushpin mode.

History comes first and is the source of truth: once the event is committed, every
subscriber gets it, whether the layer carries it or drops it (subscribers fill gaps
from history) or cannot reach their process at all (the hub's history poll), and
whether Pushpin gets it or not (it fetches what its connections missed, _held.py). A
send that fails is therefore logged, not raised: the event is already published.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction

from django_sse import _metrics
from django_sse._text import unstorable
from django_sse.broadcast import _history, _pushpin
from django_sse.broadcast._channels import ANSWER_PREFIX, group_name, validate_channel
from django_sse.broadcast._grip import publish_item
from django_sse.broadcast._history import StoredEvent
from django_sse.broadcast._layer import get_layer
from django_sse.broadcast.models import MAX_EVENT_TYPE_LENGTH
from django_sse.protocol import Event, _dump_json

__all__ = ["RESET", "apublish", "publish", "publish_event"]

logger = logging.getLogger("django_sse")

#: The event type a stream sends when it cannot resume a channel without a gap.
RESET = "reset"


def publish(channel: str, data: Any, event: str | None = None) -> int:
    """Publish an event to every subscriber of ``channel``, in every process.

    ``data`` is a str (sent as is) or anything Django's JSON encoder handles (sent as
    JSON); ``event`` is the SSE event type (None: "message"). Returns the event's
    sequence number in its channel, which is its id on a single-channel stream.
    Inside ``transaction.atomic()`` the event is sent when the transaction commits,
    and not at all if it rolls back.
    """
    checked = _checked(channel, data, event)
    _configured()
    stored, sent_on_commit = _store(*checked)
    if not sent_on_commit:
        _deliver(stored)
    return stored.seq


async def apublish(channel: str, data: Any, event: str | None = None) -> int:
    """``publish()`` for async code: the database work runs in a thread."""
    return await publish_event(channel, data, event)


async def publish_event(
    channel: str, data: Any, event: str | None = None, *, answer: bool = False
) -> int:
    """``apublish()``; with ``answer``, to a resumable answer's channel (django_sse.llm),
    which only the answer may publish to and Pushpin never holds (its view ends each
    stream), so the event is not sent to Pushpin."""
    checked = _checked(channel, data, event, answer)
    _configured()
    stored, sent_on_commit = await sync_to_async(_store)(*checked)
    if not sent_on_commit:
        await _adeliver(stored, to_pushpin=not answer)
    return stored.seq


def _configured() -> None:
    """Raise a configuration error now, before anything is stored."""
    get_layer()
    _pushpin.settings()


def _checked(
    channel: str, data: Any, event: str | None, answer: bool = False
) -> tuple[str, str, str]:
    validate_channel(channel)
    if channel.startswith(ANSWER_PREFIX) and not answer:
        raise ValueError(
            f"Channel {channel!r} is a resumable answer's (its name starts with "
            f"{ANSWER_PREFIX!r}): only django_sse.llm publishes to it"
        )
    if event is not None:
        Event(event=event)  # the wire format's own checks: a str without CR or LF
        if event == RESET:
            raise ValueError(f"The event type {RESET!r} is reserved for streams that resume")
        if not event or len(event) > MAX_EVENT_TYPE_LENGTH:
            raise ValueError(
                f"An event type needs 1 to {MAX_EVENT_TYPE_LENGTH} characters, not {len(event)}"
            )
    if data is None:
        raise TypeError("publish() needs data: an event without data never reaches a browser")
    if isinstance(data, str):
        text = data
    else:
        try:
            text = _dump_json(data)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"publish() data must be a str or JSON-serializable: {error}"
            ) from error
    # History could not store it (PostgreSQL refuses NUL; no database takes a lone
    # surrogate), nor UTF-8 send it.
    for name, value in (("data", text), ("event type", event or "")):
        if (problem := unstorable(value)) is not None:
            raise ValueError(f"publish() {name} must not contain {problem}")
    return channel, event or "", text


def _store(channel: str, event: str, data: str) -> tuple[StoredEvent, bool]:
    """Append to history; inside an outer transaction, deliver once it commits."""
    stored = _history.append(channel, event, data)
    using = _history.database()
    if not transaction.get_connection(using).in_atomic_block:
        return stored, False
    transaction.on_commit(partial(_deliver, stored), using=using)
    return stored, True


def _deliver(stored: StoredEvent) -> None:
    async_to_sync(_send)(stored)
    if _history.prune_due(stored.seq):
        with _logged("Could not prune the history of channel %r", stored.channel):
            _history.prune([stored.channel], max_batches=1)


async def _adeliver(stored: StoredEvent, to_pushpin: bool = True) -> None:
    await _send(stored, to_pushpin)
    if _history.prune_due(stored.seq):
        with _logged("Could not prune the history of channel %r", stored.channel):
            await _history.in_worker(partial(_history.prune, [stored.channel], max_batches=1))


@contextlib.contextmanager
def _logged(message: str, *args: Any) -> Iterator[None]:
    """Log and swallow errors of the steps after the event was stored: a publish that
    raised would look failed, and be repeated, though every subscriber gets it."""
    try:
        yield
    except Exception:
        logger.exception(message, *args)


async def _send(stored: StoredEvent, to_pushpin: bool = True) -> None:
    _metrics.event_published()
    with _logged(
        "Could not send event %s of channel %r through the channel layer; "
        "subscribers will read it from history",
        stored.seq,
        stored.channel,
    ):
        message = stored.as_message(published_at=time.time())
        await get_layer().group_send(group_name(stored.channel), message)
    pushpin = _pushpin.settings() if to_pushpin else None
    if pushpin is not None:
        _pushpin.publish_items([publish_item(pushpin.channel_prefix, stored)])
