"""Broadcast in Pushpin mode: a real Pushpin holds the streams of real uvicorn servers.

Every guarantee of docs/broadcast.md, through Pushpin: each event exactly once and in
order, a resume with Last-Event-ID without loss at the seam, a publish Pushpin missed
recovered from history, a refused channel never held, revoke, keep-alive, stream logs,
two Django processes behind one Pushpin, and Pushpin restarting under its clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from django_sse.protocol import MessageEvent
from tests.broadcast.redis_server import redis_url, unique_prefix
from tests.pushpin import Pushpin
from tests.servers import LiveServer, free_port
from tests.sse import RawStream

pytestmark = pytest.mark.e2e

KEY = "pushpin-test-key"
PASSWORD = "not-a-secret-7713"


def pushpin_settings(pushpin: Pushpin, **extra: object) -> str:
    return json.dumps({"PUSHPIN": {"PUBLISH_URL": pushpin.publish_url, "SIG_KEY": KEY, **extra}})


class Edge:
    """Pushpin in front of Django servers that share a database (and Redis, for two)."""

    def __init__(self, database: Path, servers: int = 1) -> None:
        self.database = database
        ports = [free_port() for _ in range(servers)]
        self.pushpin = Pushpin(ports, sig_key=KEY)
        env = {
            "SSE_TEST_DB": str(database),
            "SSE_TEST_SETTINGS": pushpin_settings(self.pushpin),
        }
        if servers > 1:
            env.update(SSE_TEST_REDIS_URL=redis_url(), SSE_TEST_REDIS_PREFIX=unique_prefix())
        self.servers = [LiveServer("uvicorn", port=port, env=env) for port in ports]
        self.django = self.servers[0]

    def __enter__(self) -> Edge:
        for server in self.servers:
            server.start()
        self.pushpin.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pushpin.close()
        for server in self.servers:
            server.stop()

    async def publish(self, channel: str, count: int = 1, server: int = 0) -> int:
        """Publish from inside a Django process; the last sequence number."""
        async with httpx.AsyncClient(base_url=self.servers[server].url, timeout=60) as client:
            response = await client.post(f"/broadcast/publish/{channel}/?count={count}")
        assert response.status_code == 200, response.text
        last: int = response.json()["last"]
        return last

    async def get(self, path: str, server: int = 0) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.servers[server].url, timeout=60) as client:
            return await client.get(path)

    def rows(self, channel: str) -> list[sqlite3.Row]:
        with sqlite3.connect(self.database) as db:
            db.row_factory = sqlite3.Row
            return db.execute(
                "SELECT * FROM django_sse_streamlog WHERE path LIKE ?", (f"%{channel}%",)
            ).fetchall()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    with Edge(tmp_path_factory.mktemp("pushpin") / "db.sqlite3") as running:
        running.django.create_user("ada", PASSWORD)
        yield running


def new_channel() -> str:
    return f"room-{uuid.uuid4().hex[:10]}"


async def read(stream: RawStream, count: int) -> list[MessageEvent]:
    events: list[MessageEvent] = []
    while len(events) < count:
        batch = await stream.next_events()
        assert batch, f"the stream ended after {[e.id for e in events]}"
        events += batch
    return events


def ids(events: list[MessageEvent]) -> list[str]:
    return [event.id for event in events]


async def test_pushpin_holds_the_stream_and_sends_each_event(edge: Edge) -> None:
    channel = new_channel()
    async with RawStream(f"{edge.pushpin.url}/broadcast/rooms/{channel}/") as stream:
        assert stream.status == 200
        assert stream.response_headers["content-type"] == "text/event-stream; charset=utf-8"
        assert not any(name.startswith("grip-") for name in stream.response_headers)
        assert await edge.publish(channel, 5) == 5
        events = await read(stream, 5)
    assert ids(events) == ["1", "2", "3", "4", "5"]
    assert [e.data for e in events] == ["0", "1", "2", "3", "4"]
    # Django answered once and keeps nothing: its stream log says the stream was held.
    [row] = edge.rows(channel)
    assert (row["outcome"], row["events_sent"]) == ("held", 0)


async def test_a_resume_mid_burst_loses_and_repeats_nothing(edge: Edge) -> None:
    channel, received = new_channel(), []
    url = f"{edge.pushpin.url}/broadcast/rooms/{channel}/"
    async with RawStream(url, headers={"Last-Event-ID": "0"}) as stream:
        burst = asyncio.ensure_future(edge.publish(channel, 300))
        received += await read(stream, 60)
    async with RawStream(url, headers={"Last-Event-ID": received[-1].id}) as stream:
        received += await read(stream, 300 - len(received))
        assert await burst == 300
    assert ids(received) == [str(seq) for seq in range(1, 301)]


async def test_a_publish_pushpin_missed_comes_from_history(edge: Edge) -> None:
    channel = new_channel()
    async with RawStream(f"{edge.pushpin.url}/broadcast/rooms/{channel}/") as stream:
        missed = await edge.get(f"/broadcast/store-only/{channel}/?data=missed")
        assert missed.json() == {"seq": 1}
        await edge.publish(channel)  # prev-id 1: Pushpin sees the gap and recovers
        events = await read(stream, 2)
    assert [(e.id, e.data) for e in events] == [("1", "missed"), ("2", "0")]


async def test_a_stream_of_several_channels_resumes_with_its_vector_id(edge: Edge) -> None:
    chat, news = new_channel(), new_channel()
    url = f"{edge.pushpin.url}/broadcast/rooms/?channel={chat}&channel={news}"
    async with RawStream(url) as stream:
        await edge.publish(chat, 2)
        await edge.publish(news, 1)
        first = await read(stream, 3)
    assert ids(first) == [f"{chat}:1,{news}:0", f"{chat}:2,{news}:0", f"{chat}:2,{news}:1"]
    await edge.publish(chat, 1)
    async with RawStream(url, headers={"Last-Event-ID": first[-1].id}) as stream:
        assert ids(await read(stream, 1)) == [f"{chat}:3,{news}:1"]


async def test_a_refused_channel_is_answered_and_never_held(edge: Edge) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        # A held response would never end; this one does, with Django's refusal.
        response = await client.get(f"{edge.pushpin.url}/broadcast/rooms/private.x/")
    assert response.status_code == 403
    assert not response.headers["content-type"].startswith("text/event-stream")


async def test_revoke_closes_the_users_connection_and_the_next_one_is_refused(
    edge: Edge,
) -> None:
    channel = f"private.{new_channel()}"
    cookies = edge.django.log_in("ada", PASSWORD)
    headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    url = f"{edge.pushpin.url}/broadcast/rooms/{channel}/"
    async with RawStream(url, headers=headers) as stream, RawStream(url) as anonymous:
        assert (stream.status, anonymous.status) == (200, 403)
        await edge.publish(channel)
        assert ids(await read(stream, 1)) == ["1"]
        revoked = await edge.get(f"/broadcast/revoke/{channel}/?user=ada")
        assert revoked.status_code == 200
        assert await stream.read_all() == []  # Pushpin closed it
        assert not stream.truncated
    async with RawStream(url, headers=headers) as again:
        assert again.status == 403


async def test_a_channel_named_like_a_users_own_does_not_reach_the_user(edge: Edge) -> None:
    own = f"private.{new_channel()}"
    cookies = edge.django.log_in("ada", PASSWORD)
    headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    # What revoke()'s channel for ada (the first user: primary key 1) was once named.
    lookalike = "user." + hashlib.sha256(b"1").hexdigest()[:32]
    async with RawStream(f"{edge.pushpin.url}/broadcast/rooms/{own}/", headers=headers) as s:
        assert s.status == 200
        await edge.publish(lookalike)
        await edge.publish(own)
        # Her own channel's event comes first: the other was never hers.
        assert [(e.id, e.data) for e in await read(s, 1)] == [("1", "0")]


async def test_an_idle_stream_gets_keep_alives_from_pushpin(edge: Edge) -> None:
    async with RawStream(f"{edge.pushpin.url}/broadcast/kept/{new_channel()}/") as stream:
        await stream.read_until(b":\n:\n")  # the opening comment, then a keep-alive


async def test_a_forged_grip_signature_is_served_by_django_itself(edge: Edge) -> None:
    channel = new_channel()
    forged = {"Grip-Sig": "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.Zm9yZ2Vk"}
    async with RawStream(f"{edge.django.url}/broadcast/rooms/{channel}/", headers=forged) as s:
        assert "grip-hold" not in s.response_headers
        await edge.publish(channel, 2)
        assert ids(await read(s, 2)) == ["1", "2"]


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[Edge]:
    with Edge(tmp_path / "db.sqlite3", servers=2) as running:
        yield running


async def test_two_django_processes_behind_one_pushpin(two_servers: Edge) -> None:
    channel, edge = new_channel(), two_servers
    url = f"{edge.pushpin.url}/broadcast/rooms/{channel}/"
    async with RawStream(url, headers={"Last-Event-ID": "0"}) as stream:
        await edge.publish(channel, 10, server=0)
        await edge.publish(channel, 10, server=1)
        events = await read(stream, 20)
        assert ids(events) == [str(seq) for seq in range(1, 21)]
        # The first process goes away: Pushpin sends new streams, and the recovery of
        # this one, to the second.
        edge.servers[0].stop()
        await edge.get(f"/broadcast/store-only/{channel}/", server=1)
        await edge.publish(channel, 1, server=1)
        assert ids(await read(stream, 2)) == ["21", "22"]
    async with RawStream(url, headers={"Last-Event-ID": "20"}) as again:
        assert ids(await read(again, 2)) == ["21", "22"]


async def test_pushpin_restarting_loses_nothing(tmp_path: Path) -> None:
    channel = new_channel()
    with Edge(tmp_path / "db.sqlite3") as edge:
        url = f"{edge.pushpin.url}/broadcast/rooms/{channel}/"
        async with RawStream(url, headers={"Last-Event-ID": "0"}) as stream:
            await edge.publish(channel, 3)
            received = await read(stream, 3)
            edge.pushpin.stop()
            assert await stream.read_all() == []  # its connection went with it
        # Published while Pushpin is down: stored, and logged once.
        assert await edge.publish(channel, 4) == 7
        edge.pushpin.start()
        await edge.publish(channel, 1)
        async with RawStream(url, headers={"Last-Event-ID": received[-1].id}) as stream:
            received += await read(stream, 5)
    assert ids(received) == [str(seq) for seq in range(1, 9)]
    log = "".join(edge.django.output)
    assert log.count("Publishing to Pushpin at") == 2  # failed once, then works again
    assert "works again" in log


async def test_a_backlog_longer_than_a_page_arrives_whole(edge: Edge) -> None:
    # Django answers with 500 events at most; Pushpin fetches the rest from the answer's
    # link, a request that carries no Grip-Last (the stream is not held yet).
    channel = new_channel()
    assert await edge.publish(channel, 1000) == 1000
    url = f"{edge.pushpin.url}/broadcast/rooms/{channel}/"
    async with RawStream(url, headers={"Last-Event-ID": "0"}) as stream:
        events = await read(stream, 1000)
        await edge.publish(channel, 1)
        events += await read(stream, 1)
    assert ids(events) == [str(seq) for seq in range(1, 1002)]
