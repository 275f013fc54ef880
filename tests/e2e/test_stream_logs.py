"""StreamLog rows written by a real server process, one per way a stream can end."""

from __future__ import annotations

import asyncio
import html
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from django_sse._redaction import BUILTIN_NAMES
from tests.servers import LiveServer
from tests.sse import RawStream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer("uvicorn") as live:
        yield live


async def logged(server: LiveServer, path: str, *, drop: bool = False) -> dict[str, Any]:
    """Stream ``path`` (dropping the connection after the first event if asked) and
    return its StreamLog row, once the server says the stream has closed."""
    token = uuid.uuid4().hex
    async with RawStream(f"{server.url}{path}?probe={token}") as stream:
        if drop:
            await stream.next_events()
        else:
            await stream.read_all()
    async with httpx.AsyncClient(base_url=server.url) as client:
        await client.get(f"/status/{token}/")
    with sqlite3.connect(server.database) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT * FROM django_sse_streamlog WHERE query_string = ?", (f"probe={token}",)
        ).fetchall()
    assert len(rows) == 1
    return dict(rows[0])


@pytest.mark.parametrize(
    ("path", "drop", "outcome", "events"),
    [
        ("/counter/", False, "completed", 3),
        ("/idle/", True, "client_disconnected", 1),
        ("/error/", False, "error", 1),  # the engine's error event is not counted
        ("/timeout/", False, "timeout", 1),
    ],
)
async def test_each_outcome_is_logged(
    server: LiveServer, path: str, drop: bool, outcome: str, events: int
) -> None:
    row = await logged(server, path, drop=drop)
    assert row["outcome"] == outcome
    assert row["events_sent"] == events
    assert row["bytes_sent"] > 0
    assert row["ended_at"] is not None
    assert row["duration"] is not None
    assert row["client_address"] == "127.0.0.1"
    assert row["path"] == path
    assert (row["error"] != "") == (outcome == "error")


async def test_streams_opening_together_each_get_their_own_row(server: LiveServer) -> None:
    """Forty streams open at once, so their rows are inserted together (django_sse.
    _log_writes); half complete and half are dropped while open. Each stream has exactly
    one row, with its own query and outcome: none lost, none inserted twice."""
    tokens = [uuid.uuid4().hex for _ in range(40)]
    paths = ["/counter/" if n % 2 else "/idle/" for n in range(len(tokens))]
    streams = [
        RawStream(f"{server.url}{path}?probe={token}")
        for path, token in zip(paths, tokens, strict=True)
    ]
    try:
        await asyncio.gather(*(stream.__aenter__() for stream in streams))
        await asyncio.gather(
            *(
                stream.read_all() if path == "/counter/" else stream.next_events()
                for stream, path in zip(streams, paths, strict=True)
            )
        )
    finally:
        for stream in streams:
            stream.close()
    async with httpx.AsyncClient(base_url=server.url) as client:
        for token in tokens:
            await client.get(f"/status/{token}/")
    with sqlite3.connect(server.database) as db:
        every_row = db.execute(
            "SELECT query_string, path, outcome, ended_at FROM django_sse_streamlog"
        ).fetchall()
    expected = {
        f"probe={token}": (path, "completed" if path == "/counter/" else "client_disconnected")
        for path, token in zip(paths, tokens, strict=True)
    }
    rows = [row for row in every_row if row[0] in expected]
    assert len(rows) == len(tokens)
    assert {query: (path, outcome) for query, path, outcome, _ in rows} == expected
    assert all(ended_at is not None for *_, ended_at in rows)


async def test_last_event_id_is_logged(server: LiveServer) -> None:
    row = await logged(server, "/counter/")
    assert row["last_event_id"] == "2"


# Issue 26: names a stream URL's credentials go by, each of the built-in fragments and
# names seen in real URLs.
CREDENTIAL_NAMES = [name.lower() for name in BUILTIN_NAMES] + [
    "client_secret",
    "X-Api-Key",
    "sessionid",
    "auth_code",
    "oauth_signature",
    "passphrase",
    "my_jwt",
    "apikey",
    "access_token",
    "password",
]


async def test_the_admin_shows_no_credential_from_a_stream_url(server: LiveServer) -> None:
    """A stream URL holds every listed name, in its path and its query, each with a
    secret of its own, and the view's error quotes the URL: staff who open the stream
    logs in the admin see none of the secrets."""
    secrets: list[str] = []

    def secret() -> str:
        secrets.append(f"q{uuid.uuid4().hex[:12]}")
        return secrets[-1]

    path = "/url-in-error/p"
    for n, name in enumerate(CREDENTIAL_NAMES):
        path += (f"/{name}={secret()}", f";{name}={secret()}", f"/{name}:{secret()}")[n % 3]
    token = uuid.uuid4().hex
    query = "&".join(
        [f"probe={token}", f"api%5Fkey={secret()}"]
        + [f"{name}={secret()}" for name in CREDENTIAL_NAMES]
    )
    async with RawStream(f"{server.url}{path}?{query}") as stream:
        await stream.read_all()
    async with httpx.AsyncClient(base_url=server.url) as client:
        await client.get(f"/status/{token}/")
    with sqlite3.connect(server.database) as db:
        [(pk, outcome)] = db.execute(
            "SELECT id, outcome FROM django_sse_streamlog WHERE query_string LIKE ?",
            (f"probe={token}&%",),
        ).fetchall()
    assert outcome == "error"

    username, password = f"staff-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    server.create_user(username, password, superuser=True)
    cookies = server.log_in(username, password)
    async with httpx.AsyncClient(base_url=server.url, cookies=cookies) as client:
        changelist = await client.get("/admin/django_sse/streamlog/")
        detail = await client.get(f"/admin/django_sse/streamlog/{pk}/change/")
    for page in (changelist, detail):
        assert page.status_code == 200
        assert f"/url-in-error/p/{CREDENTIAL_NAMES[0]}=***" in page.text
        text = html.unescape(page.text)
        leaked = [value for value in secrets if value in text or value in page.text]
        assert not leaked, f"{len(leaked)} of {len(secrets)} secrets shown in {page.url}"
    shown = html.unescape(detail.text)
    assert f"probe={token}&api%5Fkey=***&" in shown  # the query string
    assert "PermissionError: upstream refused /url-in-error/p/" in shown  # the error
    assert shown.count("=***") + shown.count(":***") >= 2 * len(CREDENTIAL_NAMES)
