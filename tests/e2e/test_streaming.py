"""SSEView through real ASGI servers (uvicorn and daphne) on loopback ports."""

from __future__ import annotations

import json
import signal
import uuid

import httpx
import pytest

from django_sse.response import WSGI_REFUSAL
from tests.servers import LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


def token() -> str:
    return uuid.uuid4().hex


async def server_status(base: str, name: str) -> dict[str, object]:
    """What the server recorded about a probed stream; it waits up to 2 s for the close."""
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get(f"/status/{name}/", params={"wait": "2"})
        result: dict[str, object] = response.json()
        return result


async def test_events_and_headers(live_server_url: str) -> None:
    async with RawStream(
        f"{live_server_url}/counter/?n=3", headers={"Accept-Encoding": "gzip"}
    ) as s:
        events = await s.read_all()
    assert s.status == 200
    assert s.response_headers["content-type"] == "text/event-stream; charset=utf-8"
    assert s.response_headers["cache-control"] == "no-cache, no-transform"
    assert s.response_headers["x-accel-buffering"] == "no"
    # GZipMiddleware is on in the test settings and the client accepts gzip.
    assert s.response_headers["content-encoding"] == "identity"
    assert "connection" not in s.response_headers or s.response_headers["connection"] != "close"
    assert [(e.data, e.id) for e in events] == [("0", "0"), ("1", "1"), ("2", "2")]


async def test_first_event_arrives_while_generator_blocks(live_server_url: str) -> None:
    name = token()
    async with RawStream(f"{live_server_url}/gate/?probe={name}") as stream:
        first = await stream.next_events()
        assert [e.data for e in first] == ["first"]
        async with httpx.AsyncClient(base_url=live_server_url) as client:
            await client.get(f"/release/{name}/")
        second = await stream.next_events()
    assert [e.data for e in second] == ["second"]


async def test_keep_alive_comment_on_idle_stream(live_server_url: str) -> None:
    async with RawStream(f"{live_server_url}/idle/?probe={token()}") as stream:
        assert [e.data for e in await stream.next_events()] == ["hello"]
        await stream.read_until(b"data: hello\n\n:\n")
    assert stream.raw.endswith(b":\n")


@pytest.mark.parametrize("path", ["idle", "flood"])
async def test_disconnect_runs_cleanup_and_on_close(live_server_url: str, path: str) -> None:
    """idle: the generator awaits; flood: it is suspended at a yield (Django #37066)."""
    name = token()
    async with RawStream(f"{live_server_url}/{path}/?probe={name}") as stream:
        await stream.next_events()
    status = await server_status(live_server_url, name)
    assert status == {"finally_ran": True, "outcome": "client_disconnected"}


async def test_exception_becomes_error_event(live_server_url: str) -> None:
    name = token()
    async with RawStream(f"{live_server_url}/error/?probe={name}") as stream:
        events = await stream.read_all()
    assert next((e.event, e.data) for e in events) == ("message", "before")
    assert events[1].event == "error"
    assert json.loads(events[1].data) == {"message": "The stream failed on the server."}
    assert b"secret detail" not in stream.raw
    assert await server_status(live_server_url, name) == {"finally_ran": True, "outcome": "error"}


async def test_max_duration_ends_with_timeout(live_server_url: str) -> None:
    name = token()
    async with RawStream(f"{live_server_url}/timeout/?probe={name}") as stream:
        events = await stream.read_all()
    assert [e.data for e in events] == ["started"]
    assert await server_status(live_server_url, name) == {"finally_ran": True, "outcome": "timeout"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/forbidden/", 403),
        ("POST", "/counter/", 405),
        ("GET", "/post-echo/", 405),
    ],
)
async def test_refusals_before_streaming(
    live_server_url: str, method: str, path: str, status: int
) -> None:
    # A valid CSRF pair, so a POST is judged by the view and not by CsrfViewMiddleware.
    secret = "a" * 32
    async with httpx.AsyncClient(base_url=live_server_url, cookies={"csrftoken": secret}) as client:
        response = await client.request(method, path, headers={"X-CSRFToken": secret})
    assert response.status_code == status
    assert not response.headers["content-type"].startswith("text/event-stream")


async def test_login_required_redirects_to_login(live_server_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_server_url) as client:
        response = await client.get("/login-required/")
    assert response.status_code == 302
    assert response.headers["location"] == "/accounts/login/?next=/login-required/"


async def test_last_event_id_header_reaches_the_view(live_server_url: str) -> None:
    headers = {"Last-Event-ID": "41"}
    async with RawStream(f"{live_server_url}/last-event-id/", headers=headers) as stream:
        events = await stream.read_all()
    assert [e.json() for e in events] == [{"last_event_id": "41"}]


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_sigterm_ends_open_streams_with_shutdown(kind: str) -> None:
    name = token()
    with LiveServer(kind) as server:
        async with RawStream(f"{server.url}/idle/?probe={name}") as stream:
            await stream.next_events()
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            # The stream ends by itself: the server stops once its responses complete.
            await stream.read_all()
        assert server.process.wait(timeout=30) is not None
        assert server.outcomes() == {name: "shutdown"}


async def test_wsgi_server_gets_a_clear_refusal() -> None:
    with LiveServer("wsgi") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/counter/")
    assert response.status_code == 500
    assert response.text == WSGI_REFUSAL
    assert any("ASGI server" in line for line in server.output)
