"""Tests for ``django_sse.protocol``: the bytes we write and the parser for what we read.

The parser is checked against the examples and the algorithm of the HTML Living Standard,
section "Interpreting an event stream", and against ``reference_parse`` below, a literal,
non-incremental transcription of that section used as an oracle for property tests.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import itertools
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from django_sse.protocol import KEEP_ALIVE, Event, EventParser, MessageEvent, encode

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def feed_all(chunks: Iterable[bytes], parser: EventParser | None = None) -> list[MessageEvent]:
    """Feed chunks to one parser and collect every event it dispatches."""
    parser = parser if parser is not None else EventParser()
    events: list[MessageEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def parse(stream: bytes) -> list[MessageEvent]:
    return feed_all([stream])


def split_at(stream: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(stream)]
    return [stream[start:end] for start, end in itertools.pairwise(bounds)]


def state(parser: EventParser) -> tuple[str, int | None]:
    return parser.last_event_id, parser.reconnection_time


def crlf_to_lf(text: str) -> str:
    return re.sub(r"\r\n?", "\n", text)


_REFERENCE_LINE = re.compile(r"([^\r\n]*)(?:\r\n|\r|\n)")


def reference_parse(stream: bytes) -> tuple[list[MessageEvent], str, int | None]:
    """The spec's algorithm read literally, on a whole stream at once.

    Returns the events, the last event ID string and the reconnection time. ``retry`` on
    an event is this package's extension: the valid ``retry`` of the block that made it.
    """
    text = stream.decode("utf-8", "replace").removeprefix("\ufeff")
    data = event_type = id_buffer = last_event_id = ""
    reconnection_time: int | None = None
    block_retry: int | None = None
    events: list[MessageEvent] = []
    # A final line with no line break after it never matches: it is discarded.
    for match in _REFERENCE_LINE.finditer(text):
        line = match.group(1)
        if line == "":
            last_event_id = id_buffer
            if data:
                events.append(
                    MessageEvent(
                        data=data.removesuffix("\n"),
                        event=event_type or "message",
                        id=last_event_id,
                        retry=block_retry,
                    )
                )
            data = event_type = ""
            block_retry = None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id" and "\0" not in value:
            id_buffer = value
        elif name == "retry" and re.fullmatch("[0-9]+", value):
            reconnection_time = block_retry = int(value)
    return events, last_event_id, reconnection_time


def _encode_as_event(data: Any) -> bytes:
    return Event(data=data).encode()


# Both ways a stream hands us data must encode it the same way.
DATA_ENCODERS = [
    pytest.param(_encode_as_event, id="Event.encode"),
    pytest.param(encode, id="encode"),
]

# ---------------------------------------------------------------------------
# Encoding: data
# ---------------------------------------------------------------------------


class TestEncodeData:
    @pytest.mark.parametrize("encoder", DATA_ENCODERS)
    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            ("hello", b"data: hello\n\n"),
            ("a\nb", b"data: a\ndata: b\n\n"),
            ("a\r\nb", b"data: a\ndata: b\n\n"),
            ("a\rb", b"data: a\ndata: b\n\n"),
            ("a\r\rb", b"data: a\ndata: \ndata: b\n\n"),
            ("a\n\r\nb", b"data: a\ndata: \ndata: b\n\n"),
            ("a\n", b"data: a\ndata: \n\n"),
            ("\n", b"data: \ndata: \n\n"),
            ("", b"data: \n\n"),
            (" lead", b"data:  lead\n\n"),
            ("caf\u00e9 \u20ac", "data: caf\u00e9 \u20ac\n\n".encode()),
        ],
    )
    def test_one_data_line_per_line(
        self, encoder: Callable[[Any], bytes], data: str, expected: bytes
    ) -> None:
        assert encoder(data) == expected

    @pytest.mark.parametrize("encoder", DATA_ENCODERS)
    def test_empty_string_is_a_dispatchable_empty_event(
        self, encoder: Callable[[Any], bytes]
    ) -> None:
        assert parse(encoder("")) == [MessageEvent(data="")]

    @pytest.mark.parametrize("encoder", DATA_ENCODERS)
    @pytest.mark.parametrize(
        "payload",
        [
            "x\n\ndata: injected",
            "x\r\revent: evil",
            "x\r\n\r\nid: 666",
            "x\nretry: 1",
            "x\n: not a comment",
            "x\n\n\n\n",
            "\nevent: evil\n\ndata: y\r\n",
        ],
    )
    def test_data_cannot_inject_fields_or_end_the_event(
        self, encoder: Callable[[Any], bytes], payload: str
    ) -> None:
        wire = encoder(payload)
        *lines, last_blank, after = wire.split(b"\n")
        assert (last_blank, after) == (b"", b"")
        assert all(line.startswith(b"data: ") for line in lines)
        parser = EventParser()
        assert parser.feed(wire) == [MessageEvent(data=crlf_to_lf(payload))]
        assert state(parser) == ("", None)

    @pytest.mark.parametrize("encoder", DATA_ENCODERS)
    @pytest.mark.parametrize(
        "char",
        ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"],
        ids=["VT", "FF", "FS", "GS", "RS", "NEL", "LS", "PS"],
    )
    def test_unicode_line_separators_are_not_line_breaks(
        self, encoder: Callable[[Any], bytes], char: str
    ) -> None:
        # str.splitlines() splits on all of these; the protocol splits only on CR and LF.
        text = f"a{char}b"
        assert encoder(text) == f"data: {text}\n\n".encode()
        assert parse(encoder(text)) == [MessageEvent(data=text)]

    @pytest.mark.parametrize("encoder", DATA_ENCODERS)
    @pytest.mark.parametrize("data", ["a\ud800b", "a\ud800\nb", {"k": "\udc00"}])
    def test_lone_surrogate_is_refused_not_sent_as_invalid_utf8(
        self, encoder: Callable[[Any], bytes], data: Any
    ) -> None:
        with pytest.raises(UnicodeEncodeError, match=r"in Event\.data$"):
            encoder(data)


class TestEncodeJson:
    @pytest.mark.parametrize("encoder", DATA_ENCODERS)
    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            ({"b": 1, "a": [1, 2]}, b'data: {"b":1,"a":[1,2]}\n\n'),
            ([1, "two", None, True], b'data: [1,"two",null,true]\n\n'),
            ({"text": "a\nb\r"}, b'data: {"text":"a\\nb\\r"}\n\n'),
            ({"k": "\u00e9\u2028"}, 'data: {"k":"\u00e9\u2028"}\n\n'.encode()),
            (42, b"data: 42\n\n"),
            (1.5, b"data: 1.5\n\n"),
            (0, b"data: 0\n\n"),
            (False, b"data: false\n\n"),
            ({}, b"data: {}\n\n"),
            ([], b"data: []\n\n"),
            (
                datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc),
                b'data: "2024-01-02T03:04:05.123Z"\n\n',
            ),
            (datetime.date(2024, 1, 2), b'data: "2024-01-02"\n\n'),
            (decimal.Decimal("1.10"), b'data: "1.10"\n\n'),
            (uuid.UUID(int=1), b'data: "00000000-0000-0000-0000-000000000001"\n\n'),
        ],
        ids=[
            "dict",
            "list",
            "escaped-breaks",
            "non-ascii-raw",
            "int",
            "float",
            "zero",
            "false",
            "empty-dict",
            "empty-list",
            "datetime",
            "date",
            "decimal",
            "uuid",
        ],
    )
    def test_compact_json_via_django_encoder(
        self, encoder: Callable[[Any], bytes], data: Any, expected: bytes
    ) -> None:
        assert encoder(data) == expected

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
    def test_numbers_json_cannot_carry_are_refused(self, value: float) -> None:
        """NaN and Infinity are not JSON: a browser's JSON.parse refuses them."""
        with pytest.raises(ValueError, match="not JSON compliant"):
            Event(data={"x": value}).encode()

    def test_message_event_json_decodes_data(self) -> None:
        [event] = parse(encode({"id": 7, "tags": ["a", "b"]}))
        assert event.json() == {"id": 7, "tags": ["a", "b"]}

    @pytest.mark.parametrize("encoder", DATA_ENCODERS)
    @pytest.mark.parametrize(
        ("data", "error"),
        [
            (object(), TypeError),
            ({"raw": b"bytes"}, TypeError),
            ({"tags": {"a"}}, TypeError),
            ({(1, 2): "tuple key"}, TypeError),
            ([float("nan")], ValueError),
        ],
    )
    def test_unserializable_data_raises_naming_the_field(
        self, encoder: Callable[[Any], bytes], data: Any, error: type[Exception]
    ) -> None:
        with pytest.raises(error, match=r"^Event\.data must be a str or JSON-serializable"):
            encoder(data)


# ---------------------------------------------------------------------------
# Encoding: event, id, retry, comment
# ---------------------------------------------------------------------------


class TestEncodeFields:
    @pytest.mark.parametrize(
        ("event", "expected"),
        [
            (
                Event(data="d", event="e", id="1", retry=5, comment="c"),
                b": c\nevent: e\ndata: d\nid: 1\nretry: 5\n\n",
            ),
            (Event(event="e"), b"event: e\n\n"),
            (Event(id="7"), b"id: 7\n\n"),
            (Event(id=""), b"id: \n\n"),
            (Event(retry=0), b"retry: 0\n\n"),
            (Event(data="d", retry=10**12), b"data: d\nretry: 1000000000000\n\n"),
            (Event(event="a\0b", data="x"), b"event: a\0b\ndata: x\n\n"),
            (Event(), b""),
        ],
        ids=[
            "all-fields",
            "event-only",
            "id-only",
            "empty-id",
            "retry-only",
            "big-retry",
            "nul-in-event",
            "nothing",
        ],
    )
    def test_field_lines(self, event: Event, expected: bytes) -> None:
        assert event.encode() == expected

    @pytest.mark.parametrize("name", ["event", "id"])
    @pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\nb", "\n", "\r", "end\n"])
    def test_event_and_id_reject_line_breaks(self, name: str, value: str) -> None:
        fields: dict[str, Any] = {name: value}
        with pytest.raises(ValueError, match=rf"Event\.{name} must"):
            Event(data="x", **fields)

    def test_id_rejects_nul(self) -> None:
        # The parser ignores an id containing NUL, so the client would keep an old one.
        with pytest.raises(ValueError, match="NUL"):
            Event(data="x", id="a\0b")

    @pytest.mark.parametrize("retry", [True, False, -1, 1.5, "5", 5.0])
    def test_retry_must_be_a_non_negative_int(self, retry: Any) -> None:
        with pytest.raises(ValueError, match="retry"):
            Event(retry=retry)

    @pytest.mark.parametrize("name", ["event", "id", "comment"])
    def test_text_fields_reject_non_str(self, name: str) -> None:
        fields: dict[str, Any] = {name: 1}
        with pytest.raises(TypeError, match=rf"Event\.{name} must"):
            Event(data="x", **fields)

    @pytest.mark.parametrize("name", ["event", "id", "comment"])
    def test_text_fields_refuse_lone_surrogates_when_made(self, name: str) -> None:
        fields: dict[str, Any] = {name: "a\ud800b"}
        with pytest.raises(ValueError, match=rf"^Event\.{name} must not contain a lone surrogate"):
            Event(data="x", **fields)

    def test_enum_members_are_sent_as_their_values(self) -> None:
        class Kind(str, enum.Enum):
            TICK = "tick"

            # What Python 3.12+ formats any (str, Enum) member as.
            def __str__(self) -> str:
                return f"{type(self).__name__}.{self.name}"

        class Delay(int, enum.Enum):
            SLOW = 5000

        event = Event(
            data=Kind.TICK, event=Kind.TICK, id=Kind.TICK, retry=Delay.SLOW, comment=Kind.TICK
        )
        assert event.encode() == b": tick\nevent: tick\ndata: tick\nid: tick\nretry: 5000\n\n"
        assert encode(Kind.TICK) == b"data: tick\n\n"
        assert parse(event.encode()) == [
            MessageEvent(data="tick", event="tick", id="tick", retry=5000)
        ]

    def test_event_is_immutable_so_validation_cannot_be_bypassed(self) -> None:
        event = Event(data="x", id="1")
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.id = "2\n"  # type: ignore[misc]

    def test_leading_spaces_survive_the_one_space_the_parser_strips(self) -> None:
        wire = Event(data="  two", event=" ev", id=" 1").encode()
        assert parse(wire) == [MessageEvent(data="  two", event=" ev", id=" 1")]


class TestEncodeComments:
    @pytest.mark.parametrize(
        ("comment", "expected"),
        [
            ("hi", b": hi\n"),
            ("", b":\n"),
            ("a\nb\r\nc\rd", b": a\n: b\n: c\n: d\n"),
            ("a\n\nb", b": a\n:\n: b\n"),
            ("a\u2028b", ": a\u2028b\n".encode()),
        ],
    )
    def test_one_colon_line_per_line_and_no_blank_line(self, comment: str, expected: bytes) -> None:
        assert Event(comment=comment).encode() == expected

    def test_comment_before_fields(self) -> None:
        assert Event(data="d", comment="c").encode() == b": c\ndata: d\n\n"

    @pytest.mark.parametrize("comment", ["x", "", "x\n\ny", "\r\r", "\r\n\r\n"])
    def test_comment_only_event_dispatches_nothing_and_splits_no_event(self, comment: str) -> None:
        # The comment sits inside the next event's block; if it ended with a blank line
        # (or a comment line break were written raw) the event would be cut in two.
        stream = b"data: a\n" + Event(comment=comment).encode() + b"data: b\n\n"
        assert parse(Event(comment=comment).encode()) == []
        assert parse(stream) == [MessageEvent(data="a\nb")]


class TestEncodeFunction:
    def test_event_is_encoded_by_itself(self) -> None:
        event = Event(data={"a": 1}, event="e", id="9", comment="c")
        assert encode(event) == event.encode()

    @pytest.mark.parametrize(
        "raw", [b"data: raw\n\n", bytearray(b"\xff\nnot sse"), memoryview(b": x\n")]
    )
    def test_bytes_pass_through_verbatim(self, raw: bytes | bytearray | memoryview) -> None:
        result = encode(raw)
        assert type(result) is bytes
        assert result == bytes(raw)

    def test_none_is_rejected(self) -> None:
        with pytest.raises(TypeError, match="None"):
            encode(None)

    @given(st.text())
    def test_str_fast_path_matches_event(self, text: str) -> None:
        assert encode(text) == Event(data=text).encode()


class TestKeepAlive:
    def test_is_a_lone_comment_line(self) -> None:
        assert KEEP_ALIVE == b":\n"

    def test_dispatches_nothing_and_never_splits_events(self) -> None:
        stream = KEEP_ALIVE + b"data: a\n" + KEEP_ALIVE + b"data: b\n\n" + KEEP_ALIVE * 3
        assert parse(KEEP_ALIVE * 3) == []
        assert parse(stream) == [MessageEvent(data="a\nb")]


# ---------------------------------------------------------------------------
# Parser: the spec's examples
# ---------------------------------------------------------------------------


SPEC_EXAMPLES = [
    pytest.param(
        b"data: This is the first message.\n\n"
        b"data: This is the second message, it\ndata: has two lines.\n\n"
        b"data: This is the third message.\n\n",
        [
            MessageEvent(data="This is the first message."),
            MessageEvent(data="This is the second message, it\nhas two lines."),
            MessageEvent(data="This is the third message."),
        ],
        "",
        id="introduction-three-messages",
    ),
    pytest.param(
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
        [
            MessageEvent(data="73857293", event="add"),
            MessageEvent(data="2153", event="remove"),
            MessageEvent(data="113411", event="add"),
        ],
        "",
        id="introduction-event-types",
    ),
    pytest.param(
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        [MessageEvent(data="YHOO\n+2\n10")],
        "",
        id="stock-ticker-multi-line",
    ),
    pytest.param(
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n",
        [
            MessageEvent(data="first event", id="1"),
            MessageEvent(data="second event", id=""),
            MessageEvent(data=" third event", id=""),
        ],
        "",
        id="comment-id-and-id-reset",
    ),
    pytest.param(
        b"data\n\ndata\ndata\n\ndata:",
        [MessageEvent(data=""), MessageEvent(data="\n")],
        "",
        id="empty-data-and-discarded-last-block",
    ),
    pytest.param(
        b"data:test\n\ndata: test\n\n",
        [MessageEvent(data="test"), MessageEvent(data="test")],
        "",
        id="space-after-colon-ignored",
    ),
]


class TestSpecExamples:
    @pytest.mark.parametrize(("stream", "expected", "last_event_id"), SPEC_EXAMPLES)
    def test_dispatches_what_the_spec_says(
        self, stream: bytes, expected: list[MessageEvent], last_event_id: str
    ) -> None:
        parser = EventParser()
        assert parser.feed(stream) == expected
        assert parser.last_event_id == last_event_id

    def test_comment_id_example_block_by_block(self) -> None:
        # "...will then set the last event ID to 1 so that if the connection died between
        # this block and the next, the server would be sent a Last-Event-ID of 1."
        parser = EventParser()
        assert parser.feed(b": test stream\n\n") == []
        assert parser.feed(b"data: first event\nid: 1\n\n") == [
            MessageEvent(data="first event", id="1")
        ]
        assert parser.last_event_id == "1"
        assert parser.feed(b"data:second event\nid\n\n") == [
            MessageEvent(data="second event", id="")
        ]
        assert parser.last_event_id == ""

    def test_last_block_would_fire_if_followed_by_a_blank_line(self) -> None:
        parser = EventParser()
        parser.feed(b"data\n\ndata\ndata\n\ndata:")
        assert parser.feed(b"\n\n") == [MessageEvent(data="")]


# ---------------------------------------------------------------------------
# Parser: lines and line breaks
# ---------------------------------------------------------------------------


class TestLineBreaks:
    @pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
    def test_every_line_break_style(self, newline: bytes) -> None:
        lines = [b"event: e", b"id: 1", b"data: a", b"data: b", b"", b": c", b"data: c", b""]
        stream = b"".join(line + newline for line in lines)
        assert parse(stream) == [
            MessageEvent(data="a\nb", event="e", id="1"),
            MessageEvent(data="c", id="1"),
        ]

    def test_mixed_line_breaks(self) -> None:
        stream = b"data: a\r\n\ndata: b\n\r\ndata: c\r\r\ndata: d\n\r"
        assert parse(stream) == [MessageEvent(data=x) for x in "abcd"]

    @pytest.mark.parametrize(
        "chunks",
        [
            [b"data: a\r", b"\ndata: b\r\n\r\n"],
            [b"data: a\r", b"\n", b"data: b\r", b"\n\r", b"\n"],
            [b"data: a\r", b"", b"\ndata: b\r", b"\n\r\n"],
        ],
        ids=["once", "every-break", "empty-chunk-between"],
    )
    def test_crlf_split_across_chunks_is_one_line_break(self, chunks: list[bytes]) -> None:
        # Were the LF read as a second line break, the blank line would dispatch "a" alone.
        assert feed_all(chunks) == [MessageEvent(data="a\nb")]

    def test_cr_at_chunk_end_completes_the_line_without_waiting(self) -> None:
        parser = EventParser()
        assert parser.feed(b"data: a\r\r") == [MessageEvent(data="a")]
        assert parser.feed(b"\ndata: b\n\n") == [MessageEvent(data="b")]

    def test_cr_then_cr_in_next_chunk_is_a_blank_line(self) -> None:
        parser = EventParser()
        assert parser.feed(b"data: a\r") == []
        assert parser.feed(b"\r") == [MessageEvent(data="a")]


class TestByteOrderMark:
    @pytest.mark.parametrize(
        "chunks",
        [
            [b"\xef\xbb\xbfdata: a\n\n"],
            [b"\xef", b"\xbb\xbfdata: a\n\n"],
            [b"\xef\xbb", b"\xbfdata: a\n\n"],
            [b"\xef", b"\xbb", b"\xbf", b"data: a\n\n"],
            [b"\xef\xbb\xbf", b"data: a\n\n"],
            [b"", b"\xef", b"", b"\xbb\xbf", b"data: a\n\n"],
        ],
        ids=["whole", "1+2", "2+1", "1+1+1", "alone", "with-empty-chunks"],
    )
    def test_leading_bom_stripped_even_when_split(self, chunks: list[bytes]) -> None:
        # Were it kept, the first line's field name would be "\ufeffdata": no event.
        assert feed_all(chunks) == [MessageEvent(data="a")]

    @pytest.mark.parametrize(
        ("stream", "expected"),
        [
            (b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n", ["b"]),
            (b"\xef\xbb\xbf\n\xef\xbb\xbfdata: a\n\ndata: b\n\n", ["b"]),
            (b"data: x\n\n\xef\xbb\xbfdata: a\n\ndata: b\n\n", ["x", "b"]),
        ],
        ids=["second-bom", "bom-on-second-line", "bom-later-in-stream"],
    )
    def test_only_one_bom_at_stream_start_is_stripped(
        self, stream: bytes, expected: list[str]
    ) -> None:
        # A BOM anywhere else is part of the line: "\ufeffdata" is an unknown field.
        assert parse(stream) == [MessageEvent(data=data) for data in expected]

    def test_bom_inside_a_value_is_kept(self) -> None:
        assert parse(b"\xef\xbb\xbfdata: \xef\xbb\xbfx\n\n") == [MessageEvent(data="\ufeffx")]

    @pytest.mark.parametrize(
        "chunks", [[b"\xef\xbbdata: a\n\n"], [b"\xef", b"\xbb", b"data: a\n\n"]]
    )
    def test_a_bom_prefix_that_is_not_a_bom_is_decoded_not_dropped(
        self, chunks: list[bytes]
    ) -> None:
        # The first line is "\ufffddata: a", an unknown field: nothing to dispatch.
        assert feed_all(chunks) == []


# ---------------------------------------------------------------------------
# Parser: fields
# ---------------------------------------------------------------------------


class TestFields:
    @pytest.mark.parametrize(
        ("line", "data"),
        [
            (b"data:x", "x"),
            (b"data: x", "x"),
            (b"data:  x", " x"),
            (b"data:   x ", "  x "),
            (b"data:\tx", "\tx"),
            (b"data: a:b: c", "a:b: c"),
            (b"data:", ""),
            (b"data: ", ""),
            (b"data", ""),
            (b"data: a\0b", "a\0b"),
        ],
    )
    def test_value_after_first_colon_minus_one_space(self, line: bytes, data: str) -> None:
        assert parse(line + b"\n\n") == [MessageEvent(data=data)]

    @pytest.mark.parametrize(
        "stream",
        [
            b"event: x\n\n",
            b": comment\n\n",
            b":\n:\n\n",
            b"\n\n\n",
            b"id: 1\n\n",
            b"retry: 5\n\n",
            b"foo: bar\n\n",
            b"DATA: x\n\n",
            b"Data: x\n\n",
            b"data : x\n\n",
            b" data: x\n\n",
            b"da\xffta: x\n\n",
        ],
    )
    def test_no_dispatch_when_data_buffer_is_empty(self, stream: bytes) -> None:
        assert parse(stream) == []

    def test_unknown_fields_are_ignored(self) -> None:
        stream = b"foo: bar\ndata: x\nbaz\nevent2: y\n: c\n\n"
        assert parse(stream) == [MessageEvent(data="x")]

    @pytest.mark.parametrize(
        ("stream", "expected"),
        [
            (b"event: x\n\ndata: y\n\n", [MessageEvent(data="y")]),
            (
                b"event: x\ndata: 1\n\ndata: 2\n\n",
                [MessageEvent(data="1", event="x"), MessageEvent(data="2")],
            ),
            (b"event: x\nevent: y\ndata: 1\n\n", [MessageEvent(data="1", event="y")]),
            (b"event: x\nevent:\ndata: 1\n\n", [MessageEvent(data="1")]),
            (b"event\ndata: 1\n\n", [MessageEvent(data="1")]),
        ],
        ids=[
            "reset-after-empty-block",
            "reset-after-dispatch",
            "last-wins",
            "empty-is-message",
            "no-colon-is-message",
        ],
    )
    def test_event_type(self, stream: bytes, expected: list[MessageEvent]) -> None:
        assert parse(stream) == expected


class TestLastEventId:
    def test_persists_across_events(self) -> None:
        stream = b"id: 1\ndata: a\n\ndata: b\n\n"
        assert parse(stream) == [MessageEvent(data="a", id="1"), MessageEvent(data="b", id="1")]

    @pytest.mark.parametrize("reset", [b"id", b"id:", b"id: "])
    def test_bare_id_resets_to_empty(self, reset: bytes) -> None:
        parser = EventParser()
        events = parser.feed(b"id: 1\ndata: a\n\n" + reset + b"\ndata: b\n\n")
        assert events == [MessageEvent(data="a", id="1"), MessageEvent(data="b", id="")]
        assert parser.last_event_id == ""

    def test_id_with_nul_is_ignored(self) -> None:
        parser = EventParser()
        events = parser.feed(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
        assert events == [MessageEvent(data="a", id="1"), MessageEvent(data="b", id="1")]
        assert parser.last_event_id == "1"

    def test_applies_to_its_whole_block_wherever_it_appears(self) -> None:
        assert parse(b"data: a\nid: 3\nid: 4\n\n") == [MessageEvent(data="a", id="4")]

    def test_block_without_data_still_sets_it(self) -> None:
        parser = EventParser()
        assert parser.feed(b"id: 5\n\n") == []
        assert parser.last_event_id == "5"
        assert parser.feed(b"data: a\n\n") == [MessageEvent(data="a", id="5")]

    def test_takes_effect_only_when_its_block_ends(self) -> None:
        # Dispatch step 1 sets the last event ID string; a connection lost mid-block must
        # resume after the last complete block, not after one never delivered.
        parser = EventParser()
        parser.feed(b"id: 1\ndata: a\n\n")
        assert parser.feed(b"id: 2\ndata: b\n") == []
        assert parser.last_event_id == "1"
        assert parser.feed(b"\n") == [MessageEvent(data="b", id="2")]
        assert parser.last_event_id == "2"

    def test_initial_value_is_used(self) -> None:
        parser = EventParser(last_event_id="41")
        assert parser.feed(b"data: a\n\n") == [MessageEvent(data="a", id="41")]

    def test_any_other_characters_are_kept(self) -> None:
        stream = "id:  caf\u00e9: \u20ac\u2028\ndata: a\n\n".encode()
        assert parse(stream) == [MessageEvent(data="a", id=" caf\u00e9: \u20ac\u2028")]


class TestRetry:
    @pytest.mark.parametrize(("value", "expected"), [(b"0", 0), (b"1000", 1000), (b"007", 7)])
    def test_ascii_digits_set_reconnection_time(self, value: bytes, expected: int) -> None:
        parser = EventParser()
        events = parser.feed(b"retry: " + value + b"\ndata: x\n\n")
        assert events == [MessageEvent(data="x", retry=expected)]
        assert parser.reconnection_time == expected

    @pytest.mark.parametrize(
        "line",
        [
            b"retry: 1000x",
            b"retry: -1",
            b"retry: +1",
            b"retry: 1.5",
            b"retry: 1e3",
            b"retry: 0x10",
            b"retry:  1",
            b"retry: 1 ",
            "retry: \u0661\u0662".encode(),
            "retry: \u00b2".encode(),
            "retry: \uff11".encode(),
            b"retry:",
            b"retry",
        ],
    )
    def test_anything_but_ascii_digits_is_ignored(self, line: bytes) -> None:
        parser = EventParser()
        events = parser.feed(b"retry: 100\n\n" + line + b"\ndata: x\n\n")
        assert events == [MessageEvent(data="x")]
        assert parser.reconnection_time == 100

    def test_kept_from_a_block_that_dispatched_no_event(self) -> None:
        parser = EventParser()
        events = parser.feed(b"retry: 5\ndata: a\n\nretry: 7\n\nretry: x\ndata: b\n\n")
        assert events == [MessageEvent(data="a", retry=5), MessageEvent(data="b")]
        assert parser.reconnection_time == 7

    def test_an_event_carries_only_its_own_blocks_retry(self) -> None:
        assert parse(b"retry: 5\ndata: a\n\ndata: b\n\n") == [
            MessageEvent(data="a", retry=5),
            MessageEvent(data="b"),
        ]


class TestUnterminated:
    @pytest.mark.parametrize(
        ("stream", "expected"),
        [
            (b"data: a", []),
            (b"data: a\n", []),
            (b"data: a\r\n", []),
            (b"data: a\n\ndata: b\n", [MessageEvent(data="a")]),
            (b"data: a\n\ndata: b", [MessageEvent(data="a")]),
        ],
    )
    def test_final_block_without_blank_line_is_not_dispatched(
        self, stream: bytes, expected: list[MessageEvent]
    ) -> None:
        assert parse(stream) == expected

    def test_events_come_out_of_the_chunk_that_completes_them(self) -> None:
        parser = EventParser()
        assert parser.feed(b"data: a\n\ndata: b") == [MessageEvent(data="a")]
        assert parser.feed(b"\n") == []
        assert parser.feed(b"\ndata: c\n\n") == [MessageEvent(data="b"), MessageEvent(data="c")]


class TestDecoding:
    @pytest.mark.parametrize(
        ("raw", "data"),
        [
            (b"\xff\xfe", "\ufffd\ufffd"),
            (b"a\x80b", "a\ufffdb"),
            (b"\xe2\x82", "\ufffd"),
            (b"\xc0\xaf", "\ufffd\ufffd"),
            (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),
            (b"\xf0\x9f\x98", "\ufffd"),
            (b"\xe2\x82\xac\xff", "\u20ac\ufffd"),
        ],
        ids=[
            "invalid-bytes",
            "stray-continuation",
            "truncated",
            "overlong",
            "surrogate",
            "truncated-4-byte",
            "valid-then-invalid",
        ],
    )
    def test_invalid_utf8_becomes_replacement_characters(self, raw: bytes, data: str) -> None:
        assert parse(b"data: " + raw + b"\n\n") == [MessageEvent(data=data)]

    def test_truncated_sequence_at_line_end_does_not_swallow_the_break(self) -> None:
        assert parse(b"data: \xe2\ndata: \x82\n\n") == [MessageEvent(data="\ufffd\n\ufffd")]

    @pytest.mark.parametrize("text", ["\u20ac", "\U0001f600", "caf\u00e9 \u20ac\U0001f600"])
    def test_multibyte_character_split_across_chunks(self, text: str) -> None:
        stream = f"data: {text}\n\n".encode()
        for cut in range(len(stream) + 1):
            assert feed_all(split_at(stream, [cut])) == [MessageEvent(data=text)]

    def test_invalid_byte_split_around_a_valid_character(self) -> None:
        chunks = [b"data: \xff\xe2", b"\x82", b"\xac\xff\n", b"\n"]
        assert feed_all(chunks) == [MessageEvent(data="\ufffd\u20ac\ufffd")]


# ---------------------------------------------------------------------------
# Parser: chunk boundaries
# ---------------------------------------------------------------------------


CHUNKED_STREAMS = [
    pytest.param(
        b"\xef\xbb\xbf: hi \xe2\x82\xac\r\nid: \xf0\x9f\x98\x80\r\nevent: caf\xc3\xa9\r\n"
        b"data: \xe2\x82\xac1\r\ndata:  x\r\n\r\n",
        [MessageEvent(data="\u20ac1\n x", event="caf\u00e9", id="\U0001f600")],
        ("\U0001f600", None),
        id="bom-crlf-multibyte-comment",
    ),
    pytest.param(
        b"data: a\rdata: b\r\rretry: 10\r\r: c\rdata: \xc3\xa9\r\r",
        [MessageEvent(data="a\nb"), MessageEvent(data="\u00e9")],
        ("", 10),
        id="lone-cr",
    ),
    pytest.param(
        b"data: a\r\n\ndata: b\n\r\ndata: c\r\r\ndata: d\n\r",
        [MessageEvent(data=x) for x in "abcd"],
        ("", None),
        id="mixed-breaks",
    ),
    pytest.param(
        b"id: 1\nid: x\x00y\ndata: \xff\xe2\x82\n\n:\n\xef\xbb\xbfdata: z\n\n",
        [MessageEvent(data="\ufffd\ufffd", id="1")],
        ("1", None),
        id="invalid-utf8-nul-id-late-bom",
    ),
    pytest.param(
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n",
        [
            MessageEvent(data="first event", id="1"),
            MessageEvent(data="second event", id=""),
            MessageEvent(data=" third event", id=""),
        ],
        ("", None),
        id="spec-comment-id",
    ),
    pytest.param(
        b"retry: 5\r\nid: 9\r\ndata: a\r\n\r\nid: 10\r\ndata: b\r",
        [MessageEvent(data="a", id="9", retry=5)],
        ("9", 5),
        id="unterminated-tail",
    ),
]


class TestChunkBoundaries:
    @pytest.mark.parametrize(("stream", "expected", "final_state"), CHUNKED_STREAMS)
    def test_whole(
        self, stream: bytes, expected: list[MessageEvent], final_state: tuple[str, int | None]
    ) -> None:
        parser = EventParser()
        assert feed_all([stream], parser) == expected
        assert state(parser) == final_state

    @pytest.mark.parametrize(("stream", "expected", "final_state"), CHUNKED_STREAMS)
    def test_every_split_into_two(
        self, stream: bytes, expected: list[MessageEvent], final_state: tuple[str, int | None]
    ) -> None:
        for cut in range(len(stream) + 1):
            parser = EventParser()
            assert feed_all(split_at(stream, [cut]), parser) == expected, cut
            assert state(parser) == final_state, cut

    @pytest.mark.parametrize(("stream", "expected", "final_state"), CHUNKED_STREAMS)
    def test_byte_by_byte(
        self, stream: bytes, expected: list[MessageEvent], final_state: tuple[str, int | None]
    ) -> None:
        parser = EventParser()
        assert feed_all([stream[i : i + 1] for i in range(len(stream))], parser) == expected
        assert state(parser) == final_state

    @pytest.mark.parametrize(("stream", "expected", "final_state"), CHUNKED_STREAMS)
    def test_reference_parser_agrees(
        self, stream: bytes, expected: list[MessageEvent], final_state: tuple[str, int | None]
    ) -> None:
        # Keeps the oracle used by the property tests honest.
        assert reference_parse(stream) == (expected, *final_state)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

# Text with plenty of CR, LF, CRLF and spaces mixed into arbitrary characters.
text_with_breaks = st.lists(
    st.one_of(st.text(), st.sampled_from(["\r", "\n", "\r\n", " ", ":"]))
).map("".join)
# Only scalar values: a lone surrogate cannot be sent as UTF-8 (see TestEncodeData).
event_names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"))
event_ids = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"))

# data is never None: a block with no data field dispatches nothing (spec), so it cannot
# round-trip; that case is covered by TestFields and TestLastEventId.
events = st.builds(
    Event,
    data=text_with_breaks,
    event=st.none() | event_names,
    id=st.none() | event_ids,
    retry=st.none() | st.integers(min_value=0),
    comment=st.none() | text_with_breaks,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
)

# Arbitrary bytes, and byte soup made of the tokens the parser cares about.
stream_tokens = st.sampled_from(
    [
        b"data",
        b"event",
        b"id",
        b"retry",
        b":",
        b" ",
        b"\r",
        b"\n",
        b"\r\n",
        b"x",
        b"1",
        b"\0",
        b"\xef\xbb\xbf",
        b"\xef",
        b"\xbb",
        b"\xe2\x82\xac",
        b"\xe2",
        b"\xff",
    ]
)
streams = st.binary() | st.lists(stream_tokens).map(b"".join)


def expected_message(event: Event, previous_id: str) -> MessageEvent:
    """What a browser would dispatch for ``event``; ids persist from earlier events."""
    return MessageEvent(
        # The protocol has no way to carry CR: every CRLF or lone CR in data arrives as LF.
        data=crlf_to_lf(event.data),
        event=event.event or "message",
        id=event.id if event.id is not None else previous_id,
        retry=event.retry,
    )


class TestProperties:
    @given(events)
    @example(Event(data=" lead", event=" ev", id=" id", comment=" c"))
    @example(Event(data="a\r\n\rb\n\r", event="", id=""))
    @example(Event(data="", retry=0))
    def test_encoded_event_parses_back(self, event: Event) -> None:
        parser = EventParser()
        [message] = parser.feed(event.encode())
        assert message == expected_message(event, "")
        assert type(message.data) is str
        assert parser.last_event_id == (event.id or "")

    @given(text_with_breaks)
    def test_encoded_str_parses_back(self, text: str) -> None:
        assert parse(encode(text)) == [MessageEvent(data=crlf_to_lf(text))]

    @given(st.lists(json_values) | st.dictionaries(st.text(), json_values))
    def test_encoded_json_parses_back(self, value: list[Any] | dict[str, Any]) -> None:
        [message] = parse(encode(value))
        assert message.json() == value

    @given(st.lists(events, max_size=8), st.booleans(), st.data())
    def test_event_sequences_parse_back_in_order(
        self, sequence: list[Event], keep_alives: bool, data: st.DataObject
    ) -> None:
        separator = KEEP_ALIVE if keep_alives else b""
        stream = separator + separator.join(event.encode() for event in sequence)
        expected: list[MessageEvent] = []
        last_id = ""
        for event in sequence:
            expected.append(expected_message(event, last_id))
            last_id = expected[-1].id
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
        parser = EventParser()
        assert feed_all(split_at(stream, cuts), parser) == expected
        assert parser.last_event_id == last_id

    @given(streams, st.data())
    def test_any_bytes_in_any_chunks_parse_as_a_whole(
        self, stream: bytes, data: st.DataObject
    ) -> None:
        whole = EventParser()
        whole_events = whole.feed(stream)
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=len(stream) + 2))
        chunked = EventParser()
        assert feed_all(split_at(stream, cuts), chunked) == whole_events
        assert state(chunked) == state(whole)

    @given(streams)
    def test_any_bytes_parse_as_the_spec_reads_them(self, stream: bytes) -> None:
        parser = EventParser()
        events = parser.feed(stream)
        assert (events, *state(parser)) == reference_parse(stream)
