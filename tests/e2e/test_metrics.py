"""Metrics read back through a real server, as Prometheus would scrape them: one uvicorn
process, and two workers sharing prometheus-client's multiprocess files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.prometheus import parse, total
from tests.servers import LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.e2e

TOKEN = "scrape-token"
SETTINGS = {"METRICS_TOKEN": TOKEN, "KEEP_ALIVE": 0, "METRICS_FLUSH_INTERVAL": 0.1}
GATE = {"view": "tests.views.GateView"}
# Long enough for a loaded CI machine; a pass never waits for it.
DEADLINE = 30.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: LiveServer) -> Samples:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return parse(response.text)


async def scrape_until(
    server: LiveServer, done: Callable[[Samples], bool], deadline: float = DEADLINE
) -> Samples:
    """Scrape until ``done`` holds. Another process's counts reach the files within its
    flush interval, and no event tells this process when: so it asks again."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while True:
        samples = await scrape(server)
        if done(samples) or loop.time() > give_up:
            return samples
        await asyncio.sleep(0.05)


async def open_gates(server: LiveServer, count: int) -> list[tuple[str, RawStream]]:
    streams = []
    for _ in range(count):
        token = uuid.uuid4().hex
        stream = RawStream(f"{server.url}/gate/?probe={token}")
        await stream.__aenter__()
        assert [e.data for e in await stream.next_events()] == ["first"]
        streams.append((token, stream))
    return streams


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer("uvicorn", env={"SSE_TEST_SETTINGS": json.dumps(SETTINGS)}) as live:
        yield live


async def test_the_figures_are_what_happened(server: LiveServer) -> None:
    before = await scrape(server)
    streams = await open_gates(server, 5)
    held = await scrape(server)
    assert total(held, "django_sse_streams_open", **GATE) == 5
    assert (
        total(held, "django_sse_events_sent_total", **GATE)
        - total(before, "django_sse_events_sent_total", **GATE)
        == 5
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for token, stream in streams[:2]:
            await client.get(f"/release/{token}/")
            assert [e.data for e in await stream.read_all()] == ["second"]
        for _, stream in streams[2:]:
            stream.close()
        outcomes = [
            (await client.get(f"/status/{token}/", params={"wait": "10"})).json()["outcome"]
            for token, _ in streams
        ]
    assert outcomes == ["completed"] * 2 + ["client_disconnected"] * 3
    after = await scrape(server)

    def added(name: str, **labels: str) -> float:
        return total(after, name, **GATE, **labels) - total(before, name, **GATE, **labels)

    assert total(after, "django_sse_streams_open", **GATE) == 0
    assert added("django_sse_streams_total", outcome="completed") == 2
    assert added("django_sse_streams_total", outcome="client_disconnected") == 3
    assert added("django_sse_events_sent_total") == 2 * 2 + 3
    assert added("django_sse_bytes_sent_total") == sum(len(s.raw) for _, s in streams)
    assert added("django_sse_stream_duration_seconds_count") == 5


async def test_a_scrape_without_the_token_gets_no_figures(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Forwarded-For": "127.0.0.1"}):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 403
            assert "django_sse_" not in response.text


async def listening(server: LiveServer) -> None:
    """Wait for the workers: the parent says it runs before they listen."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + DEADLINE
    async with httpx.AsyncClient(base_url=server.url) as client:
        while True:
            try:
                await client.get("/metrics")
                return
            except httpx.ConnectError:
                if loop.time() > give_up:
                    raise
            await asyncio.sleep(0.05)


def worker_pids(directory: Path) -> set[str]:
    """The processes that have written the open-streams gauge."""
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("gauge_livesum_*.db")}


def two_workers(directory: Path) -> LiveServer:
    """uvicorn with two worker processes sharing the multiprocess ``directory``."""
    return LiveServer(
        "uvicorn",
        command=lambda port: [
            *(sys.executable, "-m", "uvicorn", "tests.asgi:application", "--workers", "2"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        ],
        env={
            "SSE_TEST_SETTINGS": json.dumps(SETTINGS),
            "PROMETHEUS_MULTIPROC_DIR": str(directory),
        },
    )


async def open_on_both(workers: LiveServer, directory: Path) -> list[tuple[str, RawStream]]:
    """Streams open on both workers: the kernel picks the worker for each connection,
    so open more until both serve some."""
    await listening(workers)
    streams = await open_gates(workers, 10)
    while len(worker_pids(directory)) < 2 and len(streams) < 200:
        streams += await open_gates(workers, 10)
    assert len(worker_pids(directory)) == 2
    return streams


async def test_two_workers_add_up(tmp_path: Path) -> None:
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    workers = two_workers(directory)
    with workers:
        streams = await open_on_both(workers, directory)
        count = len(streams)

        def all_open(samples: Samples) -> bool:
            return total(samples, "django_sse_events_sent_total", **GATE) == count

        held = await scrape_until(workers, all_open)
        assert total(held, "django_sse_streams_open", **GATE) == count
        assert total(held, "django_sse_events_sent_total", **GATE) == count
        for _, stream in streams:
            stream.close()

        def all_closed(samples: Samples) -> bool:
            ended = {"outcome": "client_disconnected", **GATE}
            return total(samples, "django_sse_streams_total", **ended) == count

        ended = await scrape_until(workers, all_closed)
        assert total(ended, "django_sse_streams_total", outcome="client_disconnected") == count
        assert total(ended, "django_sse_streams_open", **GATE) == 0
        assert total(ended, "django_sse_bytes_sent_total", **GATE) == sum(
            len(s.raw) for _, s in streams
        )


async def test_the_open_streams_of_a_worker_killed_hard_are_no_longer_counted(
    tmp_path: Path,
) -> None:
    """uvicorn --workers has no hook like gunicorn's child_exit: a worker killed by the
    OOM killer left its open streams in django_sse_streams_open for good, and the gauge
    never came back to zero."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    workers = two_workers(directory)
    with workers:
        streams = await open_on_both(workers, directory)
        os.kill(int(min(worker_pids(directory))), signal.SIGKILL)
        for _, stream in streams:
            stream.close()

        def none_open(samples: Samples) -> bool:
            return total(samples, "django_sse_streams_open", **GATE) == 0

        # A failure waits this long; a pass, only for the surviving worker's closes.
        ended = await scrape_until(workers, none_open, deadline=8.0)
        assert total(ended, "django_sse_streams_open", **GATE) == 0
