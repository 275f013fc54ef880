"""The Pushpin fixture (tests/pushpin.py) against a stdlib GRIP origin (tests/grip_origin.py).

What later Pushpin tests build on: a client through Pushpin gets the origin's initial body
and then what is published; a route's second origin takes over when the first is down;
restart() drops held clients and holds new ones; stop() leaves no process behind.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.grip_origin import GripOrigin, hold_stream
from tests.pushpin import Pushpin, routes_line
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


@pytest.fixture
def origin() -> Iterator[GripOrigin]:
    with GripOrigin(lambda request: hold_stream(body=b"data: first\n\n")) as origin:
        yield origin


@pytest.fixture
def pushpin(origin: GripOrigin) -> Iterator[Pushpin]:
    with Pushpin([origin.port]) as pushpin:
        yield pushpin


async def publish(pushpin: Pushpin, channel: str, content: str) -> None:
    item = {"channel": channel, "formats": {"http-stream": {"content": content}}}
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(pushpin.publish_url, json={"items": [item]})
    assert response.status_code == 200, response.text


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def test_initial_body_then_published_event(pushpin: Pushpin, origin: GripOrigin) -> None:
    async with RawStream(f"{pushpin.url}/stream/") as stream:
        assert stream.status == 200
        assert stream.response_headers["content-type"] == "text/event-stream"
        # GRIP instructions are Pushpin's, never the client's.
        assert not any(name.startswith("grip-") for name in stream.response_headers)
        assert [event.data for event in await stream.next_events()] == ["first"]
        await publish(pushpin, "test", "data: published\n\n")
        assert [event.data for event in await stream.next_events()] == ["published"]
    (request,) = origin.requests
    assert request.path == "/stream/"
    assert request.header("Grip-Sig")
    assert "link:next" in (request.header("Grip-Feature") or "")


def test_routes_line_separates_targets_by_spaces() -> None:
    # "127.0.0.1:1,127.0.0.1:2" would be ONE target (port 1) with an unknown option.
    assert routes_line([8001, 8002]) == "* 127.0.0.1:8001 127.0.0.1:8002"


async def test_second_origin_of_a_route_takes_over() -> None:
    """Targets of one route are tried in order (failover, not round robin): the first
    origin gets every request while it is up, the second once it is down."""
    with (
        GripOrigin() as first,
        GripOrigin() as second,
        Pushpin([first.port, second.port]) as pushpin,
    ):
        for name in ("a", "b"):
            async with RawStream(f"{pushpin.url}/{name}/") as stream:
                assert stream.status == 200
        first.stop()
        async with RawStream(f"{pushpin.url}/c/") as stream:
            assert stream.status == 200
            await publish(pushpin, "test", "data: to-c\n\n")
            await stream.read_until(b"data: to-c\n\n")
    assert [request.path for request in first.requests] == ["/a/", "/b/"]
    assert [request.path for request in second.requests] == ["/c/"]


async def test_restart_drops_held_clients_and_holds_new_ones(
    pushpin: Pushpin, origin: GripOrigin
) -> None:
    async with RawStream(f"{pushpin.url}/before/") as held:
        assert [event.data for event in await held.next_events()] == ["first"]
        old_processes = pushpin.processes()
        pushpin.restart()
        assert await held.next_events() == []  # the stream ended
    assert not any(alive(pid) for pid in old_processes)
    assert pushpin.url.endswith(f":{pushpin.http_port}")
    async with RawStream(f"{pushpin.url}/after/") as stream:
        assert [event.data for event in await stream.next_events()] == ["first"]
        await publish(pushpin, "test", "data: after restart\n\n")
        assert [event.data for event in await stream.next_events()] == ["after restart"]
    assert [request.path for request in origin.requests] == ["/before/", "/after/"]
    assert pushpin.log().count("[handler] started") == 2


def test_stop_leaves_no_process(pushpin: Pushpin) -> None:
    processes = pushpin.processes()
    assert sorted(processes.values()) == sorted(
        ["pushpin", "condure", "zurl", "pushpin-proxy", "pushpin-handler"]
    )
    pushpin.stop()
    assert not any(alive(pid) for pid in processes)
    assert pushpin.processes() == {}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", pushpin.http_port), timeout=2).close()


def test_stop_ends_services_the_runner_left_behind(pushpin: Pushpin) -> None:
    """A runner killed outright cannot stop its services; stop() finds them by session."""
    processes = pushpin.processes()
    assert pushpin.process is not None
    os.kill(pushpin.process.pid, signal.SIGKILL)
    pushpin.process.wait(timeout=10)
    orphans = {pid for pid in processes if alive(pid)}
    assert orphans, "the services outlive a killed runner (the case stop() must handle)"
    pushpin.stop()
    assert not any(alive(pid) for pid in processes)
