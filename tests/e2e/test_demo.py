"""The bundled demo, started the way the README says: manage.py runserver (daphne)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest

from tests.prometheus import parse, total
from tests.servers import demo_runserver
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


async def test_runserver_serves_the_demo_and_its_basic_stream() -> None:
    database = Path(tempfile.mkdtemp()) / "demo.sqlite3"
    server = demo_runserver(database)
    try:
        with server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                index = await client.get("/")
                basic = await client.get("/examples/basic/")
            async with RawStream(f"{server.url}/examples/basic/stream/") as stream:
                first = await stream.next_events()
    finally:
        database.unlink(missing_ok=True)
    assert index.status_code == 200
    assert "/examples/basic/" in index.text
    assert basic.status_code == 200
    assert "class ClockView(SSEView)" in basic.text
    assert stream.response_headers["content-type"] == "text/event-stream; charset=utf-8"
    assert first[0].json()["n"] == 0


async def test_the_demo_shows_its_metrics_to_staff_only() -> None:
    database = Path(tempfile.mkdtemp()) / "demo.sqlite3"
    server = demo_runserver(database)
    try:
        with server:
            server.create_user("operator", "demo-pass-1", superuser=True)
            async with httpx.AsyncClient(base_url=server.url) as client:
                index = await client.get("/")
                anonymous = await client.get("/metrics")
            async with RawStream(f"{server.url}/examples/basic/stream/") as stream:
                await stream.next_events()
            async with httpx.AsyncClient(
                base_url=server.url, cookies=server.log_in("operator", "demo-pass-1")
            ) as staff:
                scraped = await staff.get("/metrics")
    finally:
        database.unlink(missing_ok=True)
    assert 'href="/metrics"' in index.text
    assert anonymous.status_code == 403
    assert "django_sse_" not in anonymous.text
    assert scraped.status_code == 200
    # The clock's first event, counted under its URL pattern's name.
    sent = parse(scraped.text)
    assert total(sent, "django_sse_events_sent_total", view="basic:stream") >= 1


async def test_a_room_whose_name_makes_no_channel_is_not_found() -> None:
    database = Path(tempfile.mkdtemp()) / "demo.sqlite3"
    server = demo_runserver(database)
    longest, too_long = "r" * 75, "r" * 76  # "room." and the name: 80 characters at most
    try:
        with server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                found = await client.get(f"/examples/room/{longest}/")
                # As the page posts: past CSRF, the post would reach apublish().
                csrf = {"X-CSRFToken": client.cookies["csrftoken"], "Referer": server.url}
                missing = [
                    await client.get(f"/examples/room/{too_long}/"),
                    await client.get(f"/examples/room/{too_long}/stream/"),
                    await client.post(
                        f"/examples/room/{too_long}/post/",
                        data={"name": "Ada", "text": "hi"},
                        headers=csrf,
                    ),
                ]
    finally:
        database.unlink(missing_ok=True)
    assert found.status_code == 200
    assert f"/examples/room/{longest}/stream/" in found.text
    assert [response.status_code for response in missing] == [404, 404, 404]
