"""Broadcast across real server processes: uvicorn and daphne sharing Redis and a database.

Events are published from either server and from a management command (a third
process); every subscriber, on either server, must get every event exactly once and in
order, also while clients keep dropping their connections and resuming.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.broadcast.redis_server import redis_url, unique_prefix
from tests.servers import ROOT, LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


class Cluster:
    def __init__(self, database: Path, prefix: str) -> None:
        self.env = {
            "SSE_TEST_DB": str(database),
            "SSE_TEST_REDIS_URL": redis_url(),
            "SSE_TEST_REDIS_PREFIX": prefix,
        }
        self.uvicorn = LiveServer("uvicorn", env=self.env)
        self.daphne = LiveServer("daphne", env=self.env)

    async def publish(self, server: LiveServer, channel: str, count: int) -> int:
        """Publish from inside a server process; returns the last sequence number."""
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            response = await client.post(f"/broadcast/publish/{channel}/?count={count}")
        assert response.status_code == 200, "".join(server.output[-60:])
        last: int = response.json()["last"]
        return last

    async def publish_by_command(self, channel: str, data: str) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "django", "sse_publish", channel, data,
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **self.env},
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await process.communicate()
        assert process.returncode == 0
        return int(out)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    database = Path(tempfile.mkstemp(prefix="sse-broadcast-", suffix=".sqlite3")[1])
    cluster = Cluster(database, unique_prefix())
    try:
        with cluster.uvicorn, cluster.daphne:
            yield cluster
    finally:
        database.unlink(missing_ok=True)


def new_channel() -> str:
    return f"e2e.{uuid.uuid4().hex[:12]}"


async def read(stream: RawStream, count: int) -> list[tuple[str, str]]:
    """The next ``count`` events as (type, id)."""
    events: list[tuple[str, str]] = []
    while len(events) < count:
        batch = await stream.next_events()
        assert batch, f"the stream ended after {events}"
        events += [(e.event, e.id) for e in batch]
    assert len(events) == count, events
    return events


async def test_every_subscriber_on_both_servers_gets_every_event_in_order(
    cluster: Cluster,
) -> None:
    channel, other = new_channel(), new_channel()
    single = f"/broadcast/rooms/{channel}/?lastEventId=0"
    multi = f"/broadcast/rooms/?channel={channel}&channel={other}&lastEventId={channel}:0,{other}:0"
    async with (
        RawStream(cluster.uvicorn.url + single) as on_uvicorn,
        RawStream(cluster.daphne.url + single) as on_daphne,
        RawStream(cluster.daphne.url + multi) as both_on_daphne,
    ):
        assert await cluster.publish(cluster.uvicorn, channel, 20) == 20
        assert await cluster.publish_by_command(channel, "from a command") == 21
        assert await cluster.publish_by_command(other, "from a command") == 1
        assert await cluster.publish(cluster.daphne, channel, 20) == 41

        expected = [("message", str(seq)) for seq in range(1, 42)]
        assert await read(on_uvicorn, 41) == expected
        assert await read(on_daphne, 41) == expected
        vectors = [f"{channel}:{seq},{other}:{0 if seq <= 21 else 1}" for seq in range(1, 42)]
        vectors.insert(21, f"{channel}:21,{other}:1")
        assert await read(both_on_daphne, 42) == [("message", v) for v in vectors]


class Follower:
    """A client that drops its connection after a random number of events, then resumes."""

    def __init__(self, server: LiveServer, channel: str, rng: random.Random) -> None:
        self.url = f"{server.url}/broadcast/rooms/{channel}/"
        self.rng = rng
        self.received: list[int] = []
        self.connections = 0

    async def follow_until(self, target: int) -> None:
        # Each connection yields at least one event or fails the read: at most `target`.
        while (self.received[-1] if self.received else 0) < target:
            last = str(self.received[-1]) if self.received else "0"
            budget = self.rng.randint(1, 60)
            async with RawStream(self.url, headers={"Last-Event-ID": last}) as stream:
                self.connections += 1
                assert stream.status == 200
                while budget > 0 and self.received[-1:] != [target]:
                    events = await stream.next_events()
                    assert events, "the stream ended"
                    for event in events:
                        assert event.event == "message", event
                        self.received.append(int(event.id))
                    budget -= len(events)


async def test_stress_publishing_while_clients_drop_and_resume(cluster: Cluster) -> None:
    """2000 events, published in batches alternately by each server while six clients
    (three per server) keep dropping their connections; each client catches up with a
    batch before the next begins, so none falls behind the history window."""
    channel = new_channel()
    rng = random.Random(20240501)
    servers = [cluster.uvicorn, cluster.daphne]
    followers = [Follower(servers[n % 2], channel, rng) for n in range(6)]
    batch = 200
    for number in range(10):
        target = (number + 1) * batch
        publishing = cluster.publish(servers[number % 2], channel, batch)
        last, *_ = await asyncio.gather(publishing, *(f.follow_until(target) for f in followers))
        assert last == target
    for follower in followers:
        assert follower.received == list(range(1, 10 * batch + 1))
        assert follower.connections > 10
