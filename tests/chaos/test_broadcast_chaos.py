"""Chaos: broadcast across two uvicorn processes while everything around it breaks.

Two uvicorn processes share a PostgreSQL database (history, sequence numbers) and a
private Redis (the channel layer). 32 subscribers, half on each server, follow one
channel; each drops its connection at random moments and reconnects with its
Last-Event-ID, as a browser does. A publisher publishes 3,000 events through both
servers. A third of the way through, one server is stopped with SIGTERM and a new one
started on its port; two thirds of the way through, Redis is restarted, empty.

At the end every subscriber must have seen every event exactly once and in order:
zero lost, zero duplicated, zero out of order, and no ``reset`` (the history window
is never exceeded here, so a reset would be a loss). The random schedule comes from
a seed printed with the figures; ``SSE_CHAOS_SEED`` replays one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.broadcast.redis_server import unique_prefix
from tests.chaos.support import PGHOST, PrivateRedis, postgres_database, query
from tests.servers import LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.chaos

SEED = int(os.environ.get("SSE_CHAOS_SEED", "0")) or random.randrange(1, 2**31)
SUBSCRIBERS = 32
EVENTS = 3_000
# Events per publish request, and the pause between requests: about 60 events a
# second, so the run lasts long enough for every subscriber to reconnect dozens of
# times, and a server's restart (a few seconds) stays well inside the history window
# of 1,000 events.
BATCH = 10
PACE = 0.1
# How long a subscriber keeps a connection (seconds, at most), and waits before
# reconnecting.
HOLD = 2.5
RETRY = 0.3
# The whole run stops by itself after this long, failing.
DEADLINE = 150.0


@dataclass
class Run:
    """What the publisher, the subscribers and the chaos share."""

    channel: str
    started: float = field(default_factory=time.monotonic)
    # The channel's last sequence number, once publishing is over.
    final: int | None = None
    published: int = 0
    # Set when publishing passes a third and two thirds of EVENTS.
    one_third: asyncio.Event = field(default_factory=asyncio.Event)
    two_thirds: asyncio.Event = field(default_factory=asyncio.Event)
    server_restarts: int = 0
    redis_restarts: int = 0
    publish_retries: int = 0

    def remaining(self) -> float:
        left = self.started + DEADLINE - time.monotonic()
        assert left > 0, f"the chaos run passed its deadline of {DEADLINE} s"
        return left


class Cluster:
    def __init__(self, database: str, redis: PrivateRedis) -> None:
        self.env = {
            "SSE_TEST_POSTGRES": PGHOST,
            "SSE_TEST_POSTGRES_NAME": database,
            "SSE_TEST_REDIS_URL": redis.url,
            "SSE_TEST_REDIS_PREFIX": unique_prefix(),
        }
        self.database = database
        self.redis = redis
        self.servers = [LiveServer("uvicorn", env=self.env) for _ in range(2)]

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    async def restart_server(self, index: int) -> None:
        """SIGTERM one server, then start a new process on the same port."""
        old = self.servers[index]
        code = await asyncio.to_thread(old.send_signal, signal.SIGTERM)
        # Recent uvicorn versions exit by the signal once they have shut down cleanly.
        assert code in (0, -signal.SIGTERM), "".join(old.output[-40:])
        assert any("Finished server process" in line for line in old.output), old.output
        old.stop()
        new = LiveServer("uvicorn", env=self.env, port=old.port)
        await asyncio.to_thread(new.start)
        self.servers[index] = new

    def head(self, channel: str) -> int:
        rows = query(
            self.database,
            "SELECT last_seq FROM django_sse_broadcastchannel WHERE name = %s",
            channel,
        )
        return int(str(rows[0][0])) if rows else 0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with PrivateRedis() as redis, postgres_database() as database:
        cluster = Cluster(database, redis)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


class Interrupted(Exception):
    """A server refused the request or ended the stream (it is restarting)."""


class Subscriber:
    """A client that drops its connection at random moments and resumes from its last id."""

    def __init__(self, port: int, channel: str, rng: random.Random) -> None:
        self.url = f"http://127.0.0.1:{port}/broadcast/rooms/{channel}/"
        self.rng = rng
        self.received: list[int] = []
        self.others: list[str] = []  # anything but a message event: resets
        self.connections = 0
        self.dropped = 0  # connections the client dropped itself
        self.refused = 0  # connections refused, reset, or ended by the server

    @property
    def last(self) -> int:
        return self.received[-1] if self.received else 0

    async def run(self, run: Run) -> None:
        while run.final is None or self.last < run.final:
            hold = self.rng.uniform(0.05, HOLD)
            pause = self.rng.uniform(0, RETRY)
            try:
                await self._connection(run, hold)
            except (OSError, asyncio.IncompleteReadError, Interrupted):
                self.refused += 1
            run.remaining()
            await asyncio.sleep(pause)

    async def _connection(self, run: Run, hold: float) -> None:
        """One connection, which the client drops after ``hold`` seconds by closing its
        socket, wherever the stream is then (even in the middle of an event).

        Closing the socket rather than cancelling the read: a read cancelled as its data
        arrives could swallow the cancellation (asyncio.wait_for before Python 3.12).
        """
        # The first connection resumes from 0 too: it wants every event.
        stream = RawStream(self.url, headers={"Last-Event-ID": str(self.last)})
        dropped = False

        def drop() -> None:
            nonlocal dropped
            dropped = True
            stream.close()

        timer = asyncio.get_running_loop().call_later(hold, drop)
        try:
            async with stream:
                self.connections += 1
                if dropped:  # before the socket existed, so the drop could not close it
                    stream.close()
                if stream.status != 200:
                    raise Interrupted(f"status {stream.status}")
                while run.final is None or self.last < run.final:
                    events = await stream.next_events()
                    if not events:
                        if dropped:
                            break
                        raise Interrupted("the server ended the stream")
                    for event in events:
                        if event.event != "message":
                            self.others.append(f"{event.event} {event.id} {event.data}")
                        else:
                            self.received.append(int(event.id))
        except (OSError, asyncio.IncompleteReadError):
            if not dropped:
                raise
        finally:
            timer.cancel()
        if dropped:
            self.dropped += 1


async def publish(cluster: Cluster, run: Run, rng: random.Random) -> None:
    """Publish EVENTS events in batches, through either server, whichever answers."""
    async with httpx.AsyncClient(timeout=30) as client:
        while run.published < EVENTS:
            server = cluster.servers[rng.randrange(2)]
            try:
                response = await client.post(
                    f"{server.url}/broadcast/publish/{run.channel}/", params={"count": BATCH}
                )
            except httpx.TransportError:
                run.publish_retries += 1  # that server is restarting: try again
                run.remaining()
                await asyncio.sleep(PACE)
                continue
            assert response.status_code == 200, "".join(server.output[-40:])
            run.published = response.json()["last"]
            if run.published >= EVENTS // 3:
                run.one_third.set()
            if run.published >= 2 * EVENTS // 3:
                run.two_thirds.set()
            await asyncio.sleep(PACE)


async def chaos(cluster: Cluster, run: Run) -> None:
    await run.one_third.wait()
    await cluster.restart_server(1)
    run.server_restarts += 1
    await run.two_thirds.wait()
    await cluster.redis.restart()
    run.redis_restarts += 1


async def test_no_event_is_lost_repeated_or_reordered_through_restarts(
    cluster: Cluster,
) -> None:
    print(f"\nbroadcast chaos: seed {SEED} (SSE_CHAOS_SEED={SEED} replays its schedule)")
    rng = random.Random(SEED)
    run = Run(channel=f"chaos.{uuid.uuid4().hex[:12]}")
    subscribers = [
        Subscriber(cluster.servers[n % 2].port, run.channel, random.Random(rng.random()))
        for n in range(SUBSCRIBERS)
    ]
    following = [asyncio.ensure_future(s.run(run)) for s in subscribers]
    try:
        await asyncio.wait_for(
            asyncio.gather(publish(cluster, run, random.Random(rng.random())), chaos(cluster, run)),
            run.remaining(),
        )
        run.final = await asyncio.to_thread(cluster.head, run.channel)
        await asyncio.wait_for(asyncio.gather(*following), run.remaining())
    finally:
        for task in following:
            task.cancel()
    elapsed = time.monotonic() - run.started

    expected = list(range(1, (run.final or 0) + 1))
    lost = duplicated = out_of_order = 0
    for subscriber in subscribers:
        got = subscriber.received
        lost += len(set(expected) - set(got))
        duplicated += len(got) - len(set(got))
        out_of_order += sum(1 for a, b in itertools.pairwise(got) if b < a)
    print(
        f"broadcast chaos (seed {SEED}): {run.final} events, {SUBSCRIBERS} subscribers on 2 "
        f"uvicorn processes; {sum(s.connections for s in subscribers)} connections, "
        f"{sum(s.dropped for s in subscribers)} dropped by the clients, "
        f"{sum(s.refused for s in subscribers)} refused or ended by a server; "
        f"{run.server_restarts} server restart, {run.redis_restarts} Redis restart, "
        f"{run.publish_retries} publishes retried on the other server; "
        f"lost {lost}, duplicated {duplicated}, out of order {out_of_order}; {elapsed:.1f} s"
    )
    assert run.final is not None
    assert run.final >= EVENTS
    assert (run.server_restarts, run.redis_restarts) == (1, 1)
    assert [s.others for s in subscribers] == [[]] * SUBSCRIBERS
    assert (lost, duplicated, out_of_order) == (0, 0, 0)
    for subscriber in subscribers:
        assert subscriber.received == expected
        assert subscriber.connections > 10
