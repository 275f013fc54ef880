"""The Python client against a real server that is killed and started again mid-stream."""

from __future__ import annotations

import asyncio
import signal

import pytest

from django_sse.client import ClientStatus, aconnect
from tests.servers import LiveServer

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
