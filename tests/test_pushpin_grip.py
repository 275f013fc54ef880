"""What Debian's Pushpin (1.36) does with GRIP instructions: the facts a Django origin
behind it builds on, pinned so that a Pushpin upgrade that changes one shows up here.

Each test drives a real Pushpin (tests/pushpin.py) in front of a scriptable stdlib origin
(tests/grip_origin.py) and a raw-socket client (tests/sse.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from django_sse.protocol import MessageEvent
from tests.grip_origin import GripOrigin, OriginRequest, Reply, hold_stream
from tests.pushpin import Pushpin
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


async def publish(pushpin: Pushpin, *items: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(pushpin.publish_url, json={"items": list(items)})
    assert response.status_code == 200, response.text


def stream_item(channel: str, content: str, **fields: Any) -> dict[str, Any]:
    return {"channel": channel, "formats": {"http-stream": {"content": content}}, **fields}


def close_item(channel: str, **fields: Any) -> dict[str, Any]:
    return {"channel": channel, "formats": {"http-stream": {"action": "close"}}, **fields}


async def read_events(stream: RawStream, count: int) -> list[MessageEvent]:
    events: list[MessageEvent] = []
    while len(events) < count:
        batch = await stream.next_events()
        assert batch, f"the stream ended after {events}"
        events += batch
    return events


class History:
    """A channel's events by id, as an origin keeps them to answer recovery requests."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str]] = []

    def add(self, data: str) -> int:
        event_id = len(self.events) + 1
        self.events.append((event_id, data))
        return event_id

    def last_id(self) -> int:
        return self.events[-1][0] if self.events else 0

    def after(self, last_id: int) -> bytes:
        return b"".join(
            f"id: {event_id}\ndata: {data}\n\n".encode()
            for event_id, data in self.events
            if event_id > last_id
        )


def reliable_origin(history: History, channel: str = "ch") -> GripOrigin:
    """The first request and every recovery get the same instructions: the events after
    the position (Grip-Last on a recovery), prev-id = the last id sent, and the next link."""

    def respond(request: OriginRequest) -> Reply:
        grip_last = request.header("Grip-Last")  # "ch; last-id=N" on a next-link request
        last_id = int(grip_last.rpartition("=")[2]) if grip_last else 0
        # A comment first, so the client sees when a recovery answer went out.
        body = (b": recovered\n\n" if grip_last else b": first\n\n") + history.after(last_id)
        return hold_stream(
            channel,
            body,
            **{
                "Grip-Channel": f"{channel}; prev-id={history.last_id()}",
                "Grip-Link": "</events/next/>; rel=next",
            },
        )

    return GripOrigin(respond)


@pytest.fixture
def history() -> History:
    return History()


@pytest.fixture
def origin(history: History) -> Iterator[GripOrigin]:
    with reliable_origin(history) as origin:
        yield origin


async def test_recovery_request_and_answer(history: History, origin: GripOrigin) -> None:
    """A hold with prev-id and a next link: Pushpin fetches the link ~1 s after the first
    subscriber of a channel, and again when a published prev-id does not follow; the
    request carries Grip-Last and Grip-Sig but none of the client's headers. The answer's
    events reach the client, then published items that follow its prev-id."""
    with Pushpin([origin.port]) as pushpin:
        client_headers = {"Cookie": "sessionid=secret", "Last-Event-ID": "0"}
        async with RawStream(f"{pushpin.url}/events/", headers=client_headers) as stream:
            await stream.read_until(b": first")
            first, fetch = origin.wait_for_requests(2)
            assert first.header("Cookie") == "sessionid=secret"
            assert fetch.path == "/events/next/"
            assert fetch.header("Grip-Last") == "ch; last-id=0"
            assert fetch.header("Grip-Sig")
            assert fetch.header("Cookie") is None
            assert fetch.header("Last-Event-ID") is None
            await stream.read_until(b": recovered")

            # Events 1 and 2 never reach Pushpin; 3 arrives with prev-id 2, not 0.
            for data in ("one", "two", "three"):
                history.add(data)
            await publish(
                pushpin, stream_item("ch", "id: 3\ndata: three\n\n", id="3", **{"prev-id": "2"})
            )
            events = await read_events(stream, 3)
            assert [(e.id, e.data) for e in events] == [
                ("1", "one"), ("2", "two"), ("3", "three")
            ]  # fmt: skip
            assert origin.requests[2].header("Grip-Last") == "ch; last-id=0"

            history.add("four")
            await publish(
                pushpin, stream_item("ch", "id: 4\ndata: four\n\n", id="4", **{"prev-id": "3"})
            )
            assert [(e.id, e.data) for e in await stream.next_events()] == [("4", "four")]
        assert len(origin.requests) == 3


async def test_next_link_requests_are_shared_ignoring_the_query() -> None:
    """Next-link requests are shared between sessions by path and Grip-Last only: two
    connections whose links differ in the query get ONE origin request, and both get its
    answer. Anything per user or per connection belongs in the link's path."""
    next_requests: list[str] = []
    another_next_request = threading.Event()

    def respond(request: OriginRequest) -> Reply:
        user = parse_qs(urlsplit(request.path).query)["user"][0]
        if request.path.startswith("/next"):
            next_requests.append(request.path)
            if len(next_requests) == 1:
                # A slow origin: the first next-link request is answered once another one
                # arrives (had Pushpin sent it) or after 3 s.
                another_next_request.wait(3)
            else:
                another_next_request.set()
        kind = "recovery" if request.path.startswith("/next") else "first"
        return hold_stream(
            "shared",
            f"data: {kind} for {user}\n\n".encode(),
            **{"Grip-Channel": "shared; prev-id=0", "Grip-Link": f"</next/?user={user}>; rel=next"},
        )

    with GripOrigin(respond) as origin, Pushpin([origin.port]) as pushpin:
        async with (
            RawStream(f"{pushpin.url}/s/?user=alice") as alice,
            RawStream(f"{pushpin.url}/s/?user=bob") as bob,
        ):
            assert [e.data for e in await alice.next_events()] == ["first for alice"]
            assert [e.data for e in await bob.next_events()] == ["first for bob"]
            # The first-subscriber fetch goes out for both sessions; the origin is slow.
            assert [e.data for e in await alice.next_events()] == ["recovery for alice"]
            assert [e.data for e in await bob.next_events()] == ["recovery for alice"]
    assert next_requests == ["/next/?user=alice"]


async def test_close_one_users_connections_of_one_channel() -> None:
    """Each connection also holds ``user-<id>`` with the require-sub filter; a close
    published to ``user-alice`` with meta require_sub=data ends alice's connections that
    hold ``data`` and no other."""

    def respond(request: OriginRequest) -> Reply:
        query = parse_qs(urlsplit(request.path).query)
        user, channel = query["user"][0], query["channel"][0]
        return hold_stream(
            channel,
            b": held\n\n",
            **{"Grip-Channel": f"{channel}, user-{user}; filter=require-sub"},
        )

    with GripOrigin(respond) as origin, Pushpin([origin.port]) as pushpin:
        async with (
            RawStream(f"{pushpin.url}/s/?user=alice&channel=data") as alice_data,
            RawStream(f"{pushpin.url}/s/?user=alice&channel=other") as alice_other,
            RawStream(f"{pushpin.url}/s/?user=bob&channel=data") as bob_data,
        ):
            for stream in (alice_data, alice_other, bob_data):
                await stream.read_until(b": held")
            await publish(pushpin, close_item("user-alice", meta={"require_sub": "data"}))
            assert await alice_data.read_body_chunk() == b""  # the response ended
            assert not alice_data.truncated
            await publish(
                pushpin,
                stream_item("data", "data: still here\n\n"),
                stream_item("other", "data: still here\n\n"),
            )
            assert [e.data for e in await bob_data.next_events()] == ["still here"]
            assert [e.data for e in await alice_other.next_events()] == ["still here"]


async def test_skip_users_and_skip_self_filters() -> None:
    """Grip-Set-Meta user=<id> names the connection's user; a published item's meta
    skip_users (comma-separated) or sender drops it for those users' connections."""

    def respond(request: OriginRequest) -> Reply:
        user = parse_qs(urlsplit(request.path).query)["user"][0]
        return hold_stream(
            "room",
            b": held\n\n",
            **{
                "Grip-Channel": "room; filter=skip-users; filter=skip-self",
                "Grip-Set-Meta": f"user={user}",
            },
        )

    with GripOrigin(respond) as origin, Pushpin([origin.port]) as pushpin:
        async with (
            RawStream(f"{pushpin.url}/s/?user=alice") as alice,
            RawStream(f"{pushpin.url}/s/?user=bob") as bob,
        ):
            for stream in (alice, bob):
                await stream.read_until(b": held")
            await publish(
                pushpin,
                stream_item("room", "data: not for alice\n\n", meta={"skip_users": "carol, alice"}),
                stream_item("room", "data: from bob\n\n", meta={"sender": "bob"}),
                stream_item("room", "data: everyone\n\n"),
            )
            assert [e.data for e in await read_events(alice, 2)] == ["from bob", "everyone"]
            assert [e.data for e in await read_events(bob, 2)] == ["not for alice", "everyone"]


async def test_build_id_writes_one_id_for_several_channels() -> None:
    """Channels with filter=build-id and Grip-Set-Meta id_format: Pushpin replaces %I in
    published content with id_format filled with each channel's current id (after the item's
    own). The content is a format string then: a literal % must be sent as %% (a lone % is
    a filter error that ends the stream), in the initial body too."""

    def respond(request: OriginRequest) -> Reply:
        return hold_stream(
            "a",
            b"id: a:3,b:7\ndata: 100%% ready\n\n",
            **{
                "Grip-Channel": "a; prev-id=3; filter=build-id, b; prev-id=7; filter=build-id",
                "Grip-Link": "</multi/next/>; rel=next",
                "Grip-Set-Meta": 'id_format="a:%(a)s,b:%(b)s"',
            },
        )

    with GripOrigin(respond) as origin, Pushpin([origin.port]) as pushpin:
        async with RawStream(f"{pushpin.url}/multi/") as stream:
            assert [(e.id, e.data) for e in await stream.next_events()] == [
                ("a:3,b:7", "100% ready")
            ]
            # The first-subscriber fetch: its (same) answer repeats the first event.
            assert [(e.id, e.data) for e in await stream.next_events()] == [
                ("a:3,b:7", "100% ready")
            ]
            (fetch,) = origin.wait_for_requests(2)[1:]
            assert sorted(fetch.headers.get_all("Grip-Last") or []) == [
                "a; last-id=3",
                "b; last-id=7",
            ]
            await publish(
                pushpin,
                stream_item("a", "id: %I\ndata: a4, 50%% off\n\n", id="4", **{"prev-id": "3"}),
                stream_item("b", "id: %I\ndata: b8\n\n", id="8", **{"prev-id": "7"}),
            )
            assert [(e.id, e.data) for e in await read_events(stream, 2)] == [
                ("a:4,b:7", "a4, 50% off"), ("a:4,b:8", "b8")
            ]  # fmt: skip
            await publish(
                pushpin, stream_item("a", "id: %I\ndata: 5% raw\n\n", id="5", **{"prev-id": "4"})
            )
            assert await stream.read_body_chunk() == b""  # the filter error ended the stream


async def test_keep_alive_bytes() -> None:
    """Grip-Keep-Alive with format=cstring sends exactly the unescaped bytes (here a lone
    comment line) after `timeout` seconds (less up to 1 s of jitter) without a write."""
    reply = hold_stream(
        "k", b"data: first\n\n", **{"Grip-Keep-Alive": ":\\n; format=cstring; timeout=1"}
    )
    with GripOrigin(lambda request: reply) as origin, Pushpin([origin.port]) as pushpin:
        async with RawStream(f"{pushpin.url}/k/") as stream:
            assert [e.data for e in await stream.next_events()] == ["first"]
            assert await stream.read_body_chunk() == b":\n"


def test_grip_sig_is_a_hs256_jwt_signed_with_sig_key() -> None:
    def decode(part: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return result

    with (
        GripOrigin() as origin,
        Pushpin([origin.port], sig_key="s3cret") as pushpin,
        socket.create_connection(("127.0.0.1", pushpin.http_port), timeout=10) as sock,
    ):
        sock.sendall(b"GET /sig/ HTTP/1.1\r\nHost: x\r\nGrip-Sig: forged\r\n\r\n")
        (request,) = origin.wait_for_requests(1)
    token = request.header("Grip-Sig") or ""
    header, claims, signature = token.split(".")
    assert decode(header) == {"typ": "JWT", "alg": "HS256"}
    assert decode(claims)["iss"] == "pushpin"
    assert 3500 < decode(claims)["exp"] - time.time() <= 3600
    expected = hmac.new(b"s3cret", f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=") == expected
    assert request.headers.get_all("Grip-Sig") == [token]  # the client's own was dropped
