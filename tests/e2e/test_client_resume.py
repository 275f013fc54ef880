"""The Python client against a real server that is killed and started again mid-stream."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from django_sse.client import ClientStatus, aconnect
from tests.servers import ROOT, LiveServer

pytestmark = pytest.mark.e2e

EVENTS = 60


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_resumes_after_a_server_restart_with_no_loss_and_no_duplicate(kind: str) -> None:
    first = LiveServer(kind).start()
    second = LiveServer(kind, port=first.port)
    statuses: list[ClientStatus] = []
    received: list[int] = []
    try:
        url = f"{first.url}/resumable/?n={EVENTS}"
        async with aconnect(url, on_status=statuses.append, backoff_cap=0.5) as source:
            async for event in source:
                received.append(int(event.data))
                assert event.id == event.data
                if len(received) == 10:
                    # Killed hard mid-stream: no clean end, the connection just breaks.
                    assert first.process is not None
                    first.process.send_signal(signal.SIGKILL)
                    first.process.wait(timeout=30)
                    await asyncio.to_thread(second.start)
                if len(received) == EVENTS:
                    source.close()
    finally:
        first.stop()
        second.stop()
    assert received == list(range(EVENTS))
    assert [s.state for s in statuses].count("connected") >= 2
    # It reconnected carrying the id of what it had (events already in flight when the
    # server died may take it past the tenth).
    resumed = [s for s in statuses if s.state == "reconnecting"]
    assert int(resumed[0].last_event_id) >= 9


async def test_resumes_the_demo_production_stream_across_a_restart(tmp_path: Path) -> None:
    """The issue's own check: the demo's production-patterns stream, killed and restarted."""
    demo = {
        "app": "demo.asgi:application",
        "cwd": ROOT / "demo_project",
        "env": {"DJANGO_SETTINGS_MODULE": "demo.settings", "DEMO_DB": str(tmp_path / "db")},
    }
    first = LiveServer("daphne", **demo).start()  # type: ignore[arg-type]
    second = LiveServer("daphne", port=first.port, **demo)  # type: ignore[arg-type]
    numbers: list[int] = []
    try:
        url = f"{first.url}/examples/production/stream/"
        async with aconnect(url, backoff_cap=0.5, max_retries=20) as source:
            async for event in source:
                numbers.append(event.json()["n"])
                assert event.id == str(numbers[-1])
                if len(numbers) == 3:
                    assert first.process is not None
                    first.process.send_signal(signal.SIGKILL)
                    first.process.wait(timeout=30)
                    await asyncio.to_thread(second.start)
                if len(numbers) == 6:
                    source.close()
    finally:
        first.stop()
        second.stop()
    assert numbers == list(range(6))
