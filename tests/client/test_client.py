"""The Python client (``django_sse.client``) against a scripted raw HTTP server.

Every scenario runs twice, on ``connect()`` and on ``aconnect()``, through the ``sse``
fixture: a small driver that iterates a source, records its events and statuses and
returns them. The server (tests/client/scripted_server.py) plays exact bytes, one scripted
reply per connection, so each test states what went over the wire and checks what the
client made of it. Nothing sleeps: the server sends ``retry: 1`` to make reconnections
quick, and tests wait on the client's own events and on gates they open.
"""

from __future__ import annotations

import json
import logging
import math
import operator
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, SupportsIndex

import httpx
import pytest

from django_sse.client import (
    SSEConnectionError,
    SSEResponseError,
    connect,
)
from django_sse.client._policy import MIN_BACKOFF, ReconnectPolicy
from django_sse.client._source import seconds_until
from django_sse.protocol import EventParser, MessageEvent
from tests.client.drivers import Driver
from tests.client.scripted_server import (
    ABORT,
    STOP_LISTENING,
    Gate,
    Hold,
    Pause,
    Reply,
    ScriptedServer,
    Step,
    ThreadedScriptedServer,
    dropped,
    event_stream,
    no_content,
    refused_port,
)


def ev(data: str, id: str = "", event: str = "message", retry: int | None = None) -> MessageEvent:
    return MessageEvent(data=data, event=event, id=id, retry=retry)


def opens_on(gate: Gate, data: str) -> Callable[[MessageEvent], None]:
    """An ``on_event`` hook that opens ``gate`` once an event with this data arrives."""

    def hook(event: MessageEvent) -> None:
        if event.data == data:
            gate.open()

    return hook


# ---------------------------------------------------------------------------
# Parsing, through the network
# ---------------------------------------------------------------------------

SAMPLE = (
    b"\xef\xbb\xbf"  # a byte order mark, stripped
    b": a comment\n"
    b"retry: 1\n"
    b"event: greeting\n"
    b"data: h\xc3\xa9llo\n"  # a two-byte UTF-8 sequence
    b"data:  two spaces\r\n"  # only the first space after the colon goes
    b"id: 1\r\n"
    b"\r\n"
    b"data: \xf0\x9f\x98\x80\r"  # a four-byte UTF-8 sequence, CR line endings
    b"id: x\x00y\r"  # an id with NUL is ignored: the last event ID stays "1"
    b"\r"
    b"data\n"  # a field with no colon: an empty data line
    b"data:\n"
    b"\n"
    b"data: never dispatched, no blank line follows"
)
SAMPLE_EVENTS = [
    ev("héllo\n two spaces", id="1", event="greeting", retry=1),
    ev("😀", id="1"),
    ev("\n", id="1"),
]


def test_sample_expectation_matches_the_parser() -> None:
    assert EventParser().feed(SAMPLE) == SAMPLE_EVENTS


async def test_events_survive_a_split_at_every_byte(sse: Driver, server: ScriptedServer) -> None:
    cuts = range(1, len(SAMPLE))
    # One connection per split, each with the sample in two separate writes.
    server.play(*(event_stream(SAMPLE[:cut], SAMPLE[cut:]) for cut in cuts))
    http = sse.new_client()
    try:
        for cut in cuts:
            run = await sse.run(server.url(), client=http, reconnect=False)
            assert run.events == SAMPLE_EVENTS, f"split at byte {cut}"
            assert run.last_event_id == "1"
            assert run.reconnection_time == 1
            assert run.states == ["connected", "closed"]
    finally:
        await sse.close_client(http)
    assert server.connections == len(cuts)


@pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
async def test_line_endings(sse: Driver, server: ScriptedServer, newline: bytes) -> None:
    stream = b"data: a|data: b|id: 7||: note|data: c||".replace(b"|", newline)
    server.play(event_stream(stream))
    run = await sse.run(server.url(), reconnect=False)
    assert run.events == [ev("a\nb", id="7"), ev("c", id="7")]


async def test_only_a_leading_bom_is_stripped(sse: Driver, server: ScriptedServer) -> None:
    # A BOM anywhere else is part of the line: "\ufeffdata" is an unknown field.
    server.play(event_stream(b"\xef\xbb\xbfdata: x\n\n", b"\xef\xbb\xbfdata: y\n\ndata: z\n\n"))
    run = await sse.run(server.url(), reconnect=False)
    assert run.data == ["x", "z"]


async def test_an_id_with_nul_is_ignored(sse: Driver, server: ScriptedServer) -> None:
    server.play(
        event_stream(b"retry: 1\nid: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"),
        no_content(),
    )
    run = await sse.run(server.url())
    assert run.events == [ev("a", id="1", retry=1), ev("b", id="1")]
    assert run.last_event_id == "1"
    assert server.requests[1].headers["last-event-id"] == "1"


async def test_retry_parsing(sse: Driver, server: ScriptedServer) -> None:
    server.play(
        event_stream(
            b"retry: 1000x\ndata: a\n\n"
            b"retry: 5\ndata: b\n\n"
            b"retry: x\nretry: -1\nretry: 1.5\nretry:  7\nretry:\ndata: c\n\n"
        ),
        no_content(),
    )
    run = await sse.run(server.url())
    assert run.events == [ev("a"), ev("b", retry=5), ev("c")]
    assert run.reconnection_time == 5
    # The one valid value is the reconnection delay.
    [reconnecting] = run.reconnecting()
    assert reconnecting.delay == pytest.approx(0.005)
    assert server.connections == 2


async def test_a_stream_of_comments_and_empty_blocks_yields_no_event(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(
        event_stream(b": hello\n:\n\n: more\n\n\nretry: 1\n\nevent: nothing\n\nid: 3\n\n"),
        no_content(),
    )
    run = await sse.run(server.url())
    assert run.events == []
    assert run.states == ["connected", "reconnecting", "closed"]
    # An id ends its block even with no data, and is sent on reconnecting.
    assert server.requests[1].headers["last-event-id"] == "3"


class CountingBuffer(bytearray):
    """A parser's pending bytes, counting how many bytes its searches for line ends cover."""

    scanned = 0

    def find(
        self,
        sub: Any,
        start: SupportsIndex | None = None,
        end: SupportsIndex | None = None,
        /,
    ) -> int:
        self.scanned += len(self) - (0 if start is None else operator.index(start))
        return super().find(sub, start, end)


def test_a_long_line_in_small_chunks_is_searched_once() -> None:
    # A socket hands a long line over in small chunks. Searching the whole pending line
    # again with each one made a 32 MiB line take minutes (here: 256 million bytes
    # searched); each byte is searched once for CR and once for LF, and the line ends
    # found once more.
    pending = CountingBuffer()
    parser = EventParser(_pending=pending)
    chunks = [b"data: ", *[b"x" * 64] * 2000, b"\n\n"]
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    assert events == [ev("x" * 64 * 2000)]
    assert pending.scanned < 3 * sum(map(len, chunks))


# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------


async def test_default_and_caller_headers_and_initial_last_event_id(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(no_content())
    run = await sse.run(
        server.url("/events?topic=a%20b"),
        headers={"X-Token": "abc", "Accept-Language": "fr"},
        last_event_id="42",
    )
    assert run.events == []
    assert run.states == ["closed"]
    [request] = server.requests
    assert request.method == "GET"
    assert request.target == "/events?topic=a%20b"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["cache-control"] == "no-cache"
    assert request.headers["x-token"] == "abc"
    assert request.headers["accept-language"] == "fr"
    assert request.headers["last-event-id"] == "42"


async def test_no_last_event_id_header_until_one_is_known(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(no_content())
    await sse.run(server.url())
    assert "last-event-id" not in server.requests[0].headers


async def test_a_non_ascii_last_event_id_is_sent_as_its_utf8_bytes(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(event_stream("retry: 1\nid: café ☕\ndata: a\n\n".encode()), no_content())
    run = await sse.run(server.url(), last_event_id="naïve")
    assert run.last_event_id == "café ☕"
    # The server reads header bytes as Latin-1: encoding them back gives what was sent.
    sent = [request.headers["last-event-id"].encode("latin-1") for request in server.requests]
    assert sent == ["naïve".encode(), "café ☕".encode()]


@pytest.mark.parametrize(
    ("line", "header"),
    [(b"id:  \ta b \t", b"Last-Event-ID: a b\r\n"), (b"id:    ", None)],
    ids=["inner-space-kept", "only-spaces"],
)
async def test_spaces_around_an_id_are_left_out_of_the_header(
    sse: Driver, server: ScriptedServer, line: bytes, header: bytes | None
) -> None:
    server.play(event_stream(b"retry: 1\n" + line + b"\ndata: a\n\n"), no_content())
    # max_retries: a header h11 refuses to write used to fail every attempt, unsent.
    run = await sse.run(server.url(), max_retries=1)
    assert run.last_event_id == line[4:].decode()
    assert server.connections == 2
    resumed = server.requests[1].raw
    if header is None:
        assert b"last-event-id" not in resumed.lower()
    else:
        assert b"\r\n" + header in resumed


async def test_a_passed_in_client_is_used_and_left_open(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(event_stream(b"retry: 1\nid: 1\ndata: a\n\n"), no_content())
    http = sse.new_client(headers={"X-Client": "mine"}, auth=("user", "pass"))
    try:
        run = await sse.run(server.url(), client=http)
        assert not http.is_closed
    finally:
        await sse.close_client(http)
    assert run.data == ["a"]
    assert len(server.requests) == 2
    for request in server.requests:
        assert request.headers["x-client"] == "mine"
        assert request.headers["authorization"] == "Basic dXNlcjpwYXNz"
        assert request.headers["accept"] == "text/event-stream"


# ---------------------------------------------------------------------------
# Reconnecting and resuming
# ---------------------------------------------------------------------------


async def test_reconnects_after_the_stream_ends_with_the_last_event_id(
    sse: Driver, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="django_sse.client")
    server.play(
        event_stream(b"retry: 1\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n"),
        event_stream(b"data: c\n\nid: 3\ndata: d\n\n", Hold()),
    )
    run = await sse.run(server.url(), stop_after=4)
    assert run.events == [
        ev("a", id="1", retry=1),
        ev("b", id="2"),
        ev("c", id="2"),
        ev("d", id="3"),
    ]
    assert "last-event-id" not in server.requests[0].headers
    assert server.requests[1].headers["last-event-id"] == "2"
    assert run.states == ["connected", "reconnecting", "connected"]
    reconnecting = run.statuses[1]
    assert reconnecting.delay == pytest.approx(0.001)
    assert reconnecting.error is None
    assert reconnecting.last_event_id == "2"
    assert reconnecting.url == server.url()
    assert server.connections == 2
    assert any(record.name == "django_sse.client" for record in caplog.records)


async def test_reconnects_after_a_reset_and_drops_the_half_received_event(
    sse: Driver, server: ScriptedServer
) -> None:
    got_a = Gate()
    server.play(
        # The id of an unfinished block is not committed either.
        event_stream(b"retry: 1\nid: 1\ndata: a\n\n", Hold(got_a), b"id: 2\ndata: half", ABORT),
        # A blank line first: it would dispatch "half" if the parser carried it over.
        event_stream(b"\ndata: b\n\n"),
        no_content(),
    )
    run = await sse.run(server.url(), on_event=opens_on(got_a, "a"))
    assert run.events == [ev("a", id="1", retry=1), ev("b", id="1")]
    assert server.requests[1].headers["last-event-id"] == "1"
    assert server.connections == 3
    assert run.states == ["connected", "reconnecting", "connected", "reconnecting", "closed"]
    assert isinstance(run.statuses[1].error, httpx.TransportError)


async def test_a_half_received_event_at_a_clean_end_is_dropped(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(
        event_stream(b"retry: 1\ndata: a\n\nid: 9\ndata: half"),
        event_stream(b"\ndata: b\n\n"),
        no_content(),
    )
    run = await sse.run(server.url())
    assert run.events == [ev("a", retry=1), ev("b")]
    assert "last-event-id" not in server.requests[1].headers


async def test_204_stops_for_good(sse: Driver, server: ScriptedServer) -> None:
    server.play(
        event_stream(b"retry: 1\ndata: a\n\n"),
        no_content(),
        event_stream(b"data: never\n\n"),
    )
    run = await sse.run(server.url())
    assert run.data == ["a"]
    assert run.states == ["connected", "reconnecting", "closed"]
    assert server.connections == 2


async def test_204_at_once_yields_nothing(sse: Driver, server: ScriptedServer) -> None:
    server.play(no_content(), event_stream(b"data: never\n\n"))
    run = await sse.run(server.url())
    assert run.events == []
    assert run.states == ["closed"]
    assert server.connections == 1


# ---------------------------------------------------------------------------
# Refusals: never retried
# ---------------------------------------------------------------------------

LONG_BODY = b"".join(b"line %04d of the error page\n" % n for n in range(200))


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        ("500 Internal Server Error", "text/plain", LONG_BODY),
        ("200 OK", "text/html; charset=utf-8", b"<html><body>Log in</body></html>"),
        ("404 Not Found", "text/event-stream", b"data: no\n\n"),
    ],
    ids=["500", "200-html", "404-event-stream"],
)
async def test_a_refusal_raises_and_is_not_retried(
    sse: Driver, server: ScriptedServer, status: str, content_type: str, body: bytes
) -> None:
    server.play(
        Reply(status, [("Content-Type", content_type)], [body]),
        event_stream(b"data: never\n\n"),
    )
    run = await sse.run(server.url(), expect=SSEResponseError)
    error = run.error
    assert isinstance(error, SSEResponseError)
    status_code = int(status.split()[0])
    assert error.status_code == status_code
    assert error.content_type == content_type
    assert error.body == body[:1024]
    assert str(status_code) in str(error)
    assert run.events == []
    assert "reconnecting" not in run.states
    assert server.connections == 1


@pytest.mark.parametrize("end", [Hold(), ABORT], ids=["silent", "reset"])
@pytest.mark.parametrize(
    ("status", "content_type"),
    [("200 OK", "text/html"), ("502 Bad Gateway", "text/plain")],
    ids=["200-html", "502"],
)
async def test_a_refusal_whose_body_never_ends_raises_and_is_not_retried(
    sse: Driver, server: ScriptedServer, end: Step, status: str, content_type: str
) -> None:
    # The status or the type already said no; only the first bytes of the body are
    # read, for the error. A body that went silent or was cut before them turned the
    # refusal into a network failure: retried, forever without max_retries.
    server.play(
        Reply(status, [("Content-Type", content_type)], [b"<p>no", end]),
        Reply(status, [("Content-Type", content_type)], [b"<p>no", end]),
    )
    run = await sse.run(
        server.url(), read_timeout=0.2, retry=1, max_retries=1, expect=SSEResponseError
    )
    assert isinstance(run.error, SSEResponseError)
    assert run.error.status_code == int(status.split()[0])
    # A reset may take with it what the client had not read yet.
    assert b"<p>no".startswith(run.error.body)
    assert run.states == []
    assert server.connections == 1


@pytest.mark.parametrize(
    "content_type",
    ["Text/Event-Stream; charset=utf-8", "TEXT/EVENT-STREAM", "text/event-stream ;x=y"],
)
async def test_the_media_type_is_matched_in_any_case(
    sse: Driver, server: ScriptedServer, content_type: str
) -> None:
    server.play(Reply(headers=[("Content-Type", content_type)], body=[b"data: a\n\n"]))
    run = await sse.run(server.url(), reconnect=False)
    assert run.data == ["a"]


@pytest.mark.parametrize("content_type", ["text/event-streamXYZ", "text/event-stream-x"])
async def test_another_media_type_that_starts_the_same_is_refused(
    sse: Driver, server: ScriptedServer, content_type: str
) -> None:
    server.play(Reply(headers=[("Content-Type", content_type)], body=[b"data: a\n\n"]))
    run = await sse.run(server.url(), expect=SSEResponseError)
    assert isinstance(run.error, SSEResponseError)
    assert run.error.content_type == content_type
    assert run.events == []


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://127.0.0.1/events", httpx.UnsupportedProtocol),
        ("not-a-url", httpx.UnsupportedProtocol),
        ("http://", httpx.UnsupportedProtocol),
        ("http://[::1", httpx.InvalidURL),
    ],
)
async def test_a_request_that_cannot_be_sent_is_not_retried(
    sse: Driver, url: str, error: type[Exception]
) -> None:
    # Sending it again would fail the same way: the error comes at once, not after
    # max_retries (or never, without one).
    run = await sse.run(url, retry=1, max_retries=3, expect=error)
    assert run.states == []


async def test_an_id_a_header_cannot_carry_is_an_error_at_once(
    sse: Driver, server: ScriptedServer
) -> None:
    # A vertical tab is allowed in an id, but h11 writes no header value with one.
    server.play(event_stream(b"retry: 1\nid: a\x0bb\ndata: a\n\n"), event_stream(b"data: no\n\n"))
    run = await sse.run(server.url(), max_retries=3, expect=httpx.LocalProtocolError)
    assert run.data == ["a"]
    assert run.states == ["connected", "reconnecting"]
    # The second connection was opened, but no request went through it.
    assert len(server.requests) == 1


async def test_a_refusal_on_reconnecting_raises(sse: Driver, server: ScriptedServer) -> None:
    server.play(
        event_stream(b"retry: 1\ndata: a\n\n"),
        Reply("503 Service Unavailable", [("Content-Type", "text/plain")], [b"busy"]),
        event_stream(b"data: never\n\n"),
    )
    run = await sse.run(server.url(), expect=SSEResponseError)
    assert isinstance(run.error, SSEResponseError)
    assert run.error.status_code == 503
    assert run.error.body == b"busy"
    assert run.data == ["a"]
    assert server.connections == 2


# ---------------------------------------------------------------------------
# "Not now": 429 and 503 with Retry-After are retried when the server says
# ---------------------------------------------------------------------------


def not_now(status: str, retry_after: str) -> Reply:
    return Reply(status, [("Content-Type", "text/plain"), ("Retry-After", retry_after)], [b"busy"])


@pytest.mark.parametrize("status", ["429 Too Many Requests", "503 Service Unavailable"])
async def test_a_refusal_with_retry_after_is_retried_when_the_server_says(
    sse: Driver, server: ScriptedServer, status: str
) -> None:
    server.play(not_now(status, "1"), event_stream(b"data: a\n\n"), no_content())
    run = await sse.run(server.url())
    assert run.data == ["a"]
    assert run.states == ["reconnecting", "connected", "reconnecting", "closed"]
    refused = run.reconnecting()[0]
    assert refused.delay == 1.0
    assert isinstance(refused.error, SSEResponseError)
    assert refused.error.status_code == int(status.split()[0])
    assert refused.error.retry_after == 1.0


async def test_a_refused_post_is_sent_again_as_it_started_nothing(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(not_now("429 Too Many Requests", "1"), event_stream(b"data: a\n\n"))
    run = await sse.run(server.url(), method="POST", json={"q": 1})
    assert run.data == ["a"]
    assert [request.method for request in server.requests] == ["POST", "POST"]
    assert [json.loads(request.body) for request in server.requests] == [{"q": 1}] * 2
    assert run.states == ["reconnecting", "connected", "closed"]


async def test_a_retry_after_of_zero_waits_the_backoff(sse: Driver, server: ScriptedServer) -> None:
    server.play(
        event_stream(b"retry: 1\ndata: a\n\n"),
        not_now("429 Too Many Requests", "0"),
        event_stream(b"data: b\n\n"),
        no_content(),
    )
    run = await sse.run(server.url())
    assert run.data == ["a", "b"]
    # Never a tight loop: the second failure in a row backs off from the 1 ms retry.
    delay = run.reconnecting()[1].delay
    assert delay is not None
    assert delay >= 0.001


# "²" (sent as the Latin-1 byte 0xB2) is a digit to str.isdigit(), not to float().
@pytest.mark.parametrize("retry_after", ["soon", "", "-1", "1.5", "²"])
async def test_a_retry_after_that_cannot_be_read_is_a_refusal(
    sse: Driver, server: ScriptedServer, retry_after: str
) -> None:
    server.play(not_now("429 Too Many Requests", retry_after), event_stream(b"data: no\n\n"))
    run = await sse.run(server.url(), expect=SSEResponseError)
    assert isinstance(run.error, SSEResponseError)
    assert run.error.retry_after is None
    assert server.connections == 1


async def test_retry_after_is_not_honoured_without_reconnecting(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(not_now("429 Too Many Requests", "1"), event_stream(b"data: no\n\n"))
    run = await sse.run(server.url(), reconnect=False, expect=SSEResponseError)
    assert isinstance(run.error, SSEResponseError)
    assert run.error.status_code == 429
    assert server.connections == 1


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    seconds = seconds_until(format_datetime(later, usegmt=True))
    assert seconds is not None
    assert 100 < seconds <= 120
    assert seconds_until(format_datetime(later - timedelta(days=1), usegmt=True)) == 0.0
    assert seconds_until("99999999") == 3600.0
    assert seconds_until("9" * 400) == 3600.0
    assert seconds_until("²") is None


# ---------------------------------------------------------------------------
# POST
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "sent", "content_type"),
    [
        ({"json": {"prompt": "hé", "n": 1}}, b'{"prompt":"h\\u00e9","n":1}', "application/json"),
        ({"data": {"k": "v w"}}, b"k=v+w", "application/x-www-form-urlencoded"),
    ],
    ids=["json", "form"],
)
async def test_a_post_is_not_repeated_after_its_stream_ends(
    sse: Driver, server: ScriptedServer, body: dict[str, Any], sent: bytes, content_type: str
) -> None:
    server.play(event_stream(b"retry: 1\nid: 1\ndata: a\n\n"), event_stream(b"data: never\n\n"))
    run = await sse.run(server.url(), method="POST", **body)
    assert run.data == ["a"]
    assert run.states == ["connected", "closed"]
    [request] = server.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == content_type
    if "json" in body:
        assert json.loads(request.body) == body["json"]
    else:
        assert request.body == sent


@pytest.mark.parametrize(
    "options",
    [{"method": "POST", "json": {"q": 1}}, {"reconnect": False}],
    ids=["post", "reconnect-off"],
)
async def test_a_network_error_raises_when_the_stream_may_not_be_reopened(
    sse: Driver, server: ScriptedServer, options: dict[str, Any]
) -> None:
    got_a = Gate()
    server.play(
        event_stream(b"retry: 1\ndata: a\n\n", Hold(got_a), ABORT),
        event_stream(b"data: never\n\n"),
    )
    run = await sse.run(
        server.url(), on_event=opens_on(got_a, "a"), expect=httpx.TransportError, **options
    )
    assert run.data == ["a"]
    assert server.connections == 1
    assert "reconnecting" not in run.states


async def test_repeat_post_repeats_it(sse: Driver, server: ScriptedServer) -> None:
    server.play(
        event_stream(b"retry: 1\nid: 1\ndata: a\n\n"),
        event_stream(b"data: b\n\n"),
        no_content(),
    )
    run = await sse.run(server.url(), method="POST", json={"q": 1}, repeat_post=True)
    assert run.data == ["a", "b"]
    assert server.connections == 3
    for request in server.requests:
        assert request.method == "POST"
        assert json.loads(request.body) == {"q": 1}
    assert server.requests[1].headers["last-event-id"] == "1"


# ---------------------------------------------------------------------------
# Backoff, giving up, not reconnecting
# ---------------------------------------------------------------------------


async def test_backoff_grows_is_capped_and_gives_up(sse: Driver, server: ScriptedServer) -> None:
    # One stream that sets retry to 10 ms, then nothing listens: every reconnection is
    # refused, and the delays back off from the 100 ms floor up to the 300 ms cap.
    server.play(event_stream(STOP_LISTENING, b"retry: 10\ndata: a\n\n"))
    base, cap, max_retries = 0.010, 0.3, 4
    run = await sse.run(
        server.url(), max_retries=max_retries, backoff_cap=cap, expect=SSEConnectionError
    )
    assert run.data == ["a"]
    assert run.states == ["connected", *["reconnecting"] * max_retries, "gave_up"]
    reconnecting = run.reconnecting()
    assert [status.attempt for status in reconnecting] == [1, 2, 3, 4]
    # The first reconnection waits the server's retry; then jittered exponential backoff.
    assert reconnecting[0].delay == pytest.approx(base)
    assert reconnecting[0].error is None
    ceilings = [min(cap, max(base, MIN_BACKOFF) * 2 ** (n - 1)) for n in range(2, max_retries + 1)]
    assert ceilings == pytest.approx([0.2, 0.3, 0.3])
    for status, ceiling in zip(reconnecting[1:], ceilings, strict=True):
        assert status.delay is not None
        assert ceiling / 2 <= status.delay <= ceiling, (status.attempt, status.delay)
        assert isinstance(status.error, httpx.ConnectError)
    assert server.connections == 1


async def test_a_successful_connection_resets_the_backoff(
    sse: Driver, server: ScriptedServer
) -> None:
    # With max_retries=2, two failures in a row are allowed; four in all are, because
    # each successful connection starts the count again.
    server.play(
        event_stream(b"retry: 8\ndata: a\n\n"),
        dropped(),
        event_stream(b"data: b\n\n"),
        dropped(),
        event_stream(b"data: c\n\n"),
        no_content(),
    )
    run = await sse.run(server.url(), max_retries=2)
    assert run.data == ["a", "b", "c"]
    assert run.states == [
        *["connected", "reconnecting", "reconnecting"] * 2,
        *["connected", "reconnecting", "closed"],
    ]
    reconnecting = run.reconnecting()
    assert [status.attempt for status in reconnecting] == [1, 2, 1, 2, 1]
    for status in reconnecting[::2]:
        # After a stream that connected, the delay is the server's retry again.
        assert status.delay == pytest.approx(0.008)
        assert status.error is None
    for status in reconnecting[1::2]:
        # The second failure in a row: the backoff, from its floor above the 8 ms retry.
        assert status.delay is not None
        assert MIN_BACKOFF <= status.delay <= 2 * MIN_BACKOFF
        assert isinstance(status.error, httpx.TransportError)
    assert server.connections == 6


async def test_a_retry_of_zero_still_backs_off_from_a_floor(
    sse: Driver, server: ScriptedServer
) -> None:
    # "Come back at once" after the stream ends; then nothing listens. Each failure in a
    # row used to wait 0 * 2**n, a tight loop of attempts.
    server.play(event_stream(STOP_LISTENING, b"retry: 0\ndata: a\n\n"))
    run = await sse.run(server.url(), max_retries=3, expect=SSEConnectionError)
    delays = [status.delay for status in run.reconnecting()]
    assert delays[0] == 0.0
    for n, delay in enumerate(delays[1:], start=2):
        ceiling = MIN_BACKOFF * 2 ** (n - 1)
        assert delay is not None
        assert ceiling / 2 <= delay <= ceiling, (n, delay)


@pytest.mark.parametrize("retry", [b"60000", b"9" * 25], ids=["a-minute", "25-digits"])
async def test_every_wait_is_capped_even_the_servers_retry(
    sse: Driver, server: ScriptedServer, retry: bytes
) -> None:
    server.play(event_stream(b"retry: " + retry + b"\ndata: a\n\n"), no_content())
    run = await sse.run(server.url(), backoff_cap=0.05)
    assert run.data == ["a"]
    assert [status.delay for status in run.reconnecting()] == [0.05]
    assert run.states == ["connected", "reconnecting", "closed"]


def test_backoff_survives_any_number_of_failures() -> None:
    # 2 ** 1024 does not fit in a float: failure 1025 in a row raised OverflowError.
    policy = ReconnectPolicy(backoff_cap=30.0, failures=5000)
    delay = policy.next_delay(None, None)
    assert 15.0 <= delay <= 30.0
    assert ReconnectPolicy(backoff_cap=1.0).next_delay(10**400, None) == 1.0


@pytest.mark.parametrize("cap", [math.inf, math.nan, -1.0, 86400.5])
def test_backoff_cap_is_a_number_of_seconds_up_to_a_day(cap: float) -> None:
    # threading cannot wait much longer (about 49 days on Windows), nor forever.
    with (
        pytest.raises(ValueError, match="backoff_cap"),
        connect("http://127.0.0.1/", backoff_cap=cap),
    ):
        pass


async def test_max_retries_counts_failed_reconnections(sse: Driver, server: ScriptedServer) -> None:
    server.play(event_stream(STOP_LISTENING, b"retry: 1\ndata: a\n\n"))
    run = await sse.run(server.url(), max_retries=1, expect=SSEConnectionError)
    assert run.data == ["a"]
    assert run.states == ["connected", "reconnecting", "gave_up"]


async def test_max_retries_0_gives_up_on_a_refused_port(sse: Driver) -> None:
    url = f"http://127.0.0.1:{refused_port()}/events"
    run = await sse.run(url, max_retries=0, expect=SSEConnectionError)
    assert run.states == ["gave_up"]


async def test_without_reconnect_a_refused_connection_raises(sse: Driver) -> None:
    url = f"http://127.0.0.1:{refused_port()}/events"
    run = await sse.run(url, reconnect=False, expect=httpx.ConnectError)
    assert "reconnecting" not in run.states


async def test_without_reconnect_the_stream_end_ends_iteration(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(event_stream(b"retry: 1\ndata: a\n\n"), event_stream(b"data: never\n\n"))
    run = await sse.run(server.url(), reconnect=False)
    assert run.data == ["a"]
    assert run.states == ["connected", "closed"]
    assert server.connections == 1


# ---------------------------------------------------------------------------
# Read timeout and keep-alives
# ---------------------------------------------------------------------------


async def test_silence_longer_than_read_timeout_reconnects(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(
        event_stream(b"retry: 1\nid: 1\ndata: a\n\n", Hold()),  # then silent
        event_stream(b"data: b\n\n", Hold()),
    )
    run = await sse.run(server.url(), read_timeout=0.2, stop_after=2)
    assert run.data == ["a", "b"]
    assert run.states == ["connected", "reconnecting", "connected"]
    assert isinstance(run.statuses[1].error, httpx.ReadTimeout)
    assert server.requests[1].headers["last-event-id"] == "1"


async def test_keep_alive_comments_count_as_activity(sse: Driver, server: ScriptedServer) -> None:
    # 0.75 s of comments every 50 ms, well past the 0.5 s read timeout, then an event.
    keep_alives = [step for _ in range(15) for step in (Pause(0.05), b":\n")]
    server.play(event_stream(*keep_alives, b"data: late\n\n", Hold()))
    run = await sse.run(server.url(), read_timeout=0.5, stop_after=1)
    assert run.data == ["late"]
    assert run.states == ["connected"]
    assert server.connections == 1


# ---------------------------------------------------------------------------
# close()
# ---------------------------------------------------------------------------


async def test_close_inside_the_loop_stops_iteration(sse: Driver, server: ScriptedServer) -> None:
    server.play(
        event_stream(b"retry: 1\ndata: a\n\ndata: b\n\ndata: c\n\n", Hold()),
        event_stream(b"data: never\n\n"),
    )
    run = await sse.run(server.url(), stop_after=2)
    assert run.data == ["a", "b"]
    assert "reconnecting" not in run.states
    assert server.connections == 1


# ---------------------------------------------------------------------------
# Plain sync usage, with the server in its own thread
# ---------------------------------------------------------------------------


def test_sync_client_in_a_sync_test(threaded_server: ThreadedScriptedServer) -> None:
    threaded_server.play(
        event_stream(b"retry: 1\nid: 1\ndata: a\n\n"),
        event_stream(b"data: b\n\n", Hold()),
    )
    events: list[MessageEvent] = []
    with connect(threaded_server.url()) as source:
        for event in source:
            events.append(event)
            if len(events) == 2:
                source.close()
        assert source.last_event_id == "1"
        assert source.reconnection_time == 1
    assert [event.data for event in events] == ["a", "b"]
    assert threaded_server.requests[1].headers["last-event-id"] == "1"
