"""The Server-Sent Events wire format: every byte we write, and a parser for what we read.

Encoding follows the HTML Living Standard's event stream grammar so that no value can
inject a field or end an event early. Parsing follows "Interpreting an event stream"
step by step, so the Python client and the tests see exactly what a browser sees.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

__all__ = [
    "FINISHED",
    "FINISHED_ID",
    "KEEP_ALIVE",
    "MAX_LAST_EVENT_ID",
    "Comment",
    "Event",
    "EventParser",
    "MessageEvent",
    "encode",
    "opening",
]

# Longer Last-Event-ID values are ignored (in bytes): no event id we issue is anywhere
# near it, and a client should not be able to make us carry kilobytes through every
# lookup.
MAX_LAST_EVENT_ID = 1024

# A comment line on its own: no blank line follows, so even lenient clients that
# dispatch on every blank line never see a phantom empty event.
KEEP_ALIVE = b":\n"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _lines(text: str) -> list[str]:
    # str.splitlines() would also split on \v, \f, U+2028 and friends, which the
    # protocol treats as ordinary characters.
    if "\r" not in text:
        return text.split("\n")
    return _LINE_BREAK.split(text)


def _dump_json(value: Any) -> str:
    # allow_nan=False: NaN and Infinity are not JSON, and a browser's JSON.parse refuses
    # the event; better a ValueError where the value was given.
    try:
        return json.dumps(
            value, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"Event.data must be a str or JSON-serializable by DjangoJSONEncoder: {error}"
        ) from error


def _text(name: str, value: str) -> str:
    """``value`` as the plain str it holds, for the field ``name``.

    A str subclass is sent as its value, not as its ``__format__`` would have it (Python
    3.12+ formats a ``(str, Enum)`` member as ``Class.NAME``). Text that UTF-8 cannot
    carry (a lone surrogate) is refused here, naming the field, not when it is sent.
    """
    text = str.__str__(value)
    if not text.isascii():  # ASCII is always UTF-8
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValueError(f"Event.{name} must not contain a lone surrogate: {value!r}") from None
    return text


@dataclass(frozen=True, slots=True)
class Event:
    """One event to send.

    ``data`` may be a ``str`` (sent as is, line breaks become several ``data:`` lines)
    or anything JSON-serializable by Django's encoder (dicts, lists, datetimes,
    Decimals, UUIDs), sent as compact JSON. ``None`` sends no ``data`` field.
    """

    data: Any = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None
    # The encoded bytes, kept after the first encode(): an event that many streams send
    # (a broadcast) is encoded once, not once per stream.
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.event is not None:
            if not isinstance(self.event, str):
                raise TypeError(f"Event.event must be a str, not {type(self.event).__name__}")
            if "\r" in self.event or "\n" in self.event:
                raise ValueError(f"Event.event must not contain CR or LF: {self.event!r}")
            if type(self.event) is not str or not self.event.isascii():
                object.__setattr__(self, "event", _text("event", self.event))
        if self.id is not None:
            if not isinstance(self.id, str):
                raise TypeError(f"Event.id must be a str, not {type(self.id).__name__}")
            if "\r" in self.id or "\n" in self.id or "\0" in self.id:
                raise ValueError(f"Event.id must not contain CR, LF or NUL: {self.id!r}")
            if type(self.id) is not str or not self.id.isascii():
                object.__setattr__(self, "id", _text("id", self.id))
        if self.retry is not None:
            if isinstance(self.retry, bool) or not isinstance(self.retry, int) or self.retry < 0:
                raise ValueError(f"Event.retry must be a non-negative int, not {self.retry!r}")
            if type(self.retry) is not int:
                # An int subclass (an (int, Enum) member) is sent as its number.
                object.__setattr__(self, "retry", int(self.retry))
        if self.comment is not None:
            if not isinstance(self.comment, str):
                raise TypeError(f"Event.comment must be a str, not {type(self.comment).__name__}")
            if type(self.comment) is not str or not self.comment.isascii():
                object.__setattr__(self, "comment", _text("comment", self.comment))

    def encode(self) -> bytes:
        if self._wire is None:
            object.__setattr__(self, "_wire", self._encode())
        assert self._wire is not None
        return self._wire

    def _encode(self) -> bytes:
        parts: list[str] = []
        if self.comment is not None:
            parts.extend(f":{' ' if line else ''}{line}\n" for line in _lines(self.comment))
        fields = len(parts)
        if self.event is not None:
            parts.append(f"event: {self.event}\n")
        if self.data is not None:
            text = self.data if isinstance(self.data, str) else _dump_json(self.data)
            # The lines are plain str even when ``data`` is a subclass: sent as its value.
            parts.extend(f"data: {line}\n" for line in _lines(text))
        if self.id is not None:
            parts.append(f"id: {self.id}\n")
        if self.retry is not None:
            parts.append(f"retry: {self.retry}\n")
        if len(parts) > fields:
            parts.append("\n")
        wire = "".join(parts)
        try:
            return wire.encode()
        except UnicodeEncodeError as error:
            # The other fields were checked when the Event was made: it is the data's.
            raise UnicodeEncodeError(
                error.encoding, wire, error.start, error.end, f"{error.reason} in Event.data"
            ) from None


# The id of FINISHED: a client that reconnects with it as Last-Event-ID is answered 204.
FINISHED_ID = "django-sse:finished"
FINISHED = Event(data="", event="finished", id=FINISHED_ID, retry=1)
"""Yield it last: the client sees a ``finished`` event, reconnects at once (``retry: 1``)
with this id, and is answered 204, on which EventSource, the JavaScript helper, htmx and
the Python client all stop for good."""


def opening(retry: int | None) -> bytes:
    """What a stream sends first: ``retry`` if it sets one, else a comment line, so
    that its headers and first bytes leave at once."""
    return KEEP_ALIVE if retry is None else Event(retry=retry).encode()


def encode(item: Any) -> bytes:
    """Encode one item a stream yields: an Event, a str or JSON-able data, or raw bytes."""
    if isinstance(item, str):
        if "\n" not in item and "\r" not in item:
            # Concatenated, not formatted: a str subclass is sent as its value.
            try:
                return ("data: " + item + "\n\n").encode()
            except UnicodeEncodeError:
                pass  # Event's error names the field
        return Event(data=item).encode()
    if isinstance(item, Event):
        return item.encode()
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if item is None:
        raise TypeError("A stream yielded None; yield an Event, a str, JSON-able data or bytes")
    return Event(data=item).encode()


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """An event as a browser's EventSource would dispatch it."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment line (``: text``): a keep-alive, or whatever else a server says aside."""

    text: str


@dataclass(slots=True)
class EventParser:
    """Incremental parser for ``text/event-stream`` bytes, per the HTML Living Standard.

    Feed it chunks as they arrive, split anywhere (inside a UTF-8 sequence, between CR
    and LF); it returns the events completed by each chunk. ``last_event_id`` is the
    spec's "last event ID string": it persists across events, and an ``id`` takes effect
    only when its block ends with a blank line (whether or not the block dispatches an
    event), so a connection lost mid-block resumes after the last complete block rather
    than skipping it. ``reconnection_time`` holds the last valid ``retry`` value,
    including one sent in a block that dispatched no event.
    """

    last_event_id: str = ""
    reconnection_time: int | None = None
    _pending: bytearray = field(default_factory=bytearray)
    _started: bool = False
    _after_cr: bool = False
    _data: list[str] = field(default_factory=list)
    _event_type: str = ""
    # An ``id`` read in the current block, committed to ``last_event_id`` at its end.
    _id: str | None = None
    _retry: int | None = None

    # Whether feed() returns comments among the events (see feed_all()).
    _comments: bool = False

    def feed(self, chunk: bytes) -> list[MessageEvent]:
        if self._comments:
            return [item for item in self.feed_all(chunk) if isinstance(item, MessageEvent)]
        # Without comments asked for, _line() returns only events.
        return self._feed(chunk)  # type: ignore[return-value]

    def feed_all(self, chunk: bytes) -> list[MessageEvent | Comment]:
        """The events and the comments ``chunk`` completes, in the order they came."""
        self._comments = True
        return self._feed(chunk)

    def _feed(self, chunk: bytes) -> list[MessageEvent | Comment]:
        if not chunk:
            return []
        buffer = self._pending
        # What was pending is the start of a line, with no CR or LF in it: only the new
        # bytes are searched. Searching it again with every chunk would be quadratic in
        # the length of a long line that arrives in many chunks.
        searched = len(buffer)
        buffer += chunk
        if not self._started:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(bytes(buffer)):
                return []
            if buffer.startswith(b"\xef\xbb\xbf"):
                del buffer[:3]
            self._started = True
            searched = 0  # at most two bytes of a byte order mark were pending
        if self._after_cr and buffer[:1] == b"\n":
            del buffer[:1]  # nothing was pending: the CR ended the last chunk's last line
        self._after_cr = False
        events: list[MessageEvent | Comment] = []
        start = 0
        length = len(buffer)
        # Each search resumes only once the line break it found is consumed: searching
        # afresh for every line would rescan the rest of the buffer for a CR that an
        # LF-only stream never sends, which is quadratic in the chunk size.
        cr = buffer.find(b"\r", searched)
        lf = buffer.find(b"\n", searched)
        while cr != -1 or lf != -1:
            if cr == -1 or (lf != -1 and lf < cr):
                end, next_start = lf, lf + 1
            elif cr + 1 < length:
                end = cr
                next_start = cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
            else:
                # A CR ends this chunk: the line is complete, but an LF at the start
                # of the next chunk belongs to the same line break.
                end, next_start = cr, cr + 1
                self._after_cr = True
            event = self._line(buffer[start:end].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = next_start
            if cr != -1 and cr < start:
                cr = buffer.find(b"\r", start)
            if lf != -1 and lf < start:
                lf = buffer.find(b"\n", start)
        del buffer[:start]
        return events

    def _line(self, line: str) -> MessageEvent | Comment | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            if self._comments:
                text = line[1:]
                return Comment(text[1:] if text[:1] == " " else text)
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value and value.isascii() and value.isdigit():
            self._retry = self.reconnection_time = int(value)
        return None

    def _dispatch(self) -> MessageEvent | None:
        if self._id is not None:
            self.last_event_id, self._id = self._id, None
        retry, self._retry = self._retry, None
        if not self._data:
            self._event_type = ""
            return None
        event = MessageEvent(
            data="\n".join(self._data),
            event=self._event_type or "message",
            id=self.last_event_id,
            retry=retry,
        )
        self._data = []
        self._event_type = ""
        return event
