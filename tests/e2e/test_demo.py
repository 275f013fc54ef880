"""The bundled demo, started the way the README says: manage.py runserver (daphne)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.prometheus import parse, total
from tests.servers import LiveServer, demo_runserver
from tests.sse import RawStream

pytestmark = pytest.mark.e2e

OPERATOR = ("operator", "demo-pass-1")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One demo server for the module, with a superuser to scrape its metrics."""
    database: Path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    with demo_runserver(database) as server:
        server.create_user(*OPERATOR, superuser=True)
        yield server


async def test_runserver_serves_the_demo_and_its_basic_stream(demo: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=demo.url) as client:
        index = await client.get("/")
        basic = await client.get("/examples/basic/")
    async with RawStream(f"{demo.url}/examples/basic/stream/") as stream:
        first = await stream.next_events()
    assert index.status_code == 200
    assert "/examples/basic/" in index.text
    assert basic.status_code == 200
    assert "class ClockView(SSEView)" in basic.text
    assert stream.response_headers["content-type"] == "text/event-stream; charset=utf-8"
    assert first[0].json()["n"] == 0


async def test_the_demo_shows_its_metrics_to_staff_only(demo: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=demo.url) as client:
        index = await client.get("/")
        anonymous = await client.get("/metrics")
    async with RawStream(f"{demo.url}/examples/basic/stream/") as stream:
        await stream.next_events()
    async with httpx.AsyncClient(base_url=demo.url, cookies=demo.log_in(*OPERATOR)) as staff:
        scraped = await staff.get("/metrics")
    assert 'href="/metrics"' in index.text
    assert anonymous.status_code == 403
    assert "django_sse_" not in anonymous.text
    assert scraped.status_code == 200
    # The clock's first event, counted under its URL pattern's name.
    sent = parse(scraped.text)
    assert total(sent, "django_sse_events_sent_total", view="basic:stream") >= 1


async def test_a_room_whose_name_makes_no_channel_is_not_found(demo: LiveServer) -> None:
    longest, too_long = "r" * 75, "r" * 76  # "room." and the name: 80 characters at most
    async with httpx.AsyncClient(base_url=demo.url) as client:
        found = await client.get(f"/examples/room/{longest}/")
        # As the page posts: past CSRF, the post would reach apublish().
        csrf = {"X-CSRFToken": client.cookies["csrftoken"], "Referer": demo.url}
        missing = [
            await client.get(f"/examples/room/{too_long}/"),
            await client.get(f"/examples/room/{too_long}/stream/"),
            await client.post(
                f"/examples/room/{too_long}/post/",
                data={"name": "Ada", "text": "hi"},
                headers=csrf,
            ),
        ]
    assert found.status_code == 200
    assert f"/examples/room/{longest}/stream/" in found.text
    assert [response.status_code for response in missing] == [404, 404, 404]


async def test_a_room_post_the_room_cannot_take_is_a_400_that_says_why(demo: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=demo.url) as client:
        await client.get("/examples/room/lobby/")
        csrf = {"X-CSRFToken": client.cookies["csrftoken"], "Referer": demo.url}
        posts = [
            {"name": "Ada", "text": "a\x00b"},  # history cannot store a NUL
            {"name": "  ", "text": "hi"},
            {"name": "Ada", "text": "x" * 501},
        ]
        refused = [
            await client.post("/examples/room/lobby/post/", data=post, headers=csrf)
            for post in posts
        ]
        accepted = await client.post(
            "/examples/room/lobby/post/", data={"name": " Ada ", "text": "hi"}, headers=csrf
        )
    async with RawStream(
        f"{demo.url}/examples/room/lobby/stream/",
        headers={"Last-Event-ID": "room.lobby:0"},
    ) as stream:
        sent = await stream.next_events()
    assert [response.status_code for response in refused] == [400, 400, 400]
    errors = [response.json()["error"] for response in refused]
    assert errors[0] == "text: Null characters are not allowed."
    assert errors[1] == "name: This field is required."
    assert errors[2] == "text: Ensure this value has at most 500 characters (it has 501)."
    assert accepted.status_code == 200
    # Only the accepted post reached the room, with the spaces around the name stripped.
    assert [event.data for event in sent] == ["<li><b>Ada</b>: hi</li>"]


async def test_example_4_refuses_an_interval_it_cannot_use_before_streaming(
    demo: LiveServer,
) -> None:
    stream_url = "/examples/production/stream/"
    refused: list[tuple[int, bytes]] = []
    async with httpx.AsyncClient(base_url=demo.url) as client:
        for value in ("9" * 5000, "0", "31", "abc", "²"):
            # Streamed: a value taken for a good one would start an endless stream.
            params = {"interval": value}
            async with client.stream("GET", stream_url, params=params) as response:
                body = await response.aread() if response.status_code == 400 else b""
                refused.append((response.status_code, body))
    async with RawStream(f"{demo.url}{stream_url}?interval=2") as stream:
        first = await stream.next_events()
    message = b'{"error": "interval takes a whole number of seconds from 1 to 30."}'
    assert refused == [(400, message)] * 5
    assert first[0].json()["n"] == 0


async def test_example_2_names_its_answer_streams_in_the_metrics(demo: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=demo.url) as client:
        await client.get("/examples/chat/")
        csrf = {"X-CSRFToken": client.cookies["csrftoken"], "Referer": demo.url}
        started = await client.post("/examples/chat/answer/", data={"prompt": "Hi"}, headers=csrf)
    async with RawStream(demo.url + started.json()["stream_url"]) as stream:
        await stream.next_events()
    async with httpx.AsyncClient(base_url=demo.url, cookies=demo.log_in(*OPERATOR)) as staff:
        scraped = await staff.get("/metrics")
    assert started.status_code == 201
    # Not the name of a private class of the library: the URL pattern's own.
    sent = parse(scraped.text)
    assert total(sent, "django_sse_events_sent_total", view="chat:answer-stream") >= 1
