"""Resumable answers across two real server processes, with real sessions.

Two uvicorn processes share a database and a Redis channel layer, as a deployment
would. An answer started on one is attacked from both: by another logged-in user and
by an anonymous client, after history has pruned its first events. The limits on
running answers are counted across both processes, and an answer that its reader
followed on the other process is abandoned once nobody follows it any more.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from django_sse.protocol import EventParser, MessageEvent
from tests.broadcast.redis_server import redis_url, unique_prefix
from tests.llm.upstream import Upstream
from tests.servers import LiveServer

pytestmark = pytest.mark.e2e

HELLO = {"messages": [{"role": "user", "content": "Hello"}]}
PASSWORD = "not-a-secret-5521"
SETTINGS = {
    "BROADCAST_HISTORY_SIZE": 5,
    "LLM_GENERATIONS_PER_USER": 2,
    "LLM_GENERATIONS_PER_ADDRESS": 2,
    # Long enough that a loaded machine starts following before it runs out.
    "LLM_GENERATION_ABANDON_AFTER": 3.0,
}


class Pair:
    """Two server processes with one database and one channel layer."""

    def __init__(self, upstream: Upstream, database: Path) -> None:
        env = {
            "SSE_TEST_DB": str(database),
            "SSE_TEST_REDIS_URL": redis_url(),
            "SSE_TEST_REDIS_PREFIX": unique_prefix(),
            "SSE_TEST_UPSTREAM": upstream.url,
            "SSE_TEST_SETTINGS": json.dumps(SETTINGS),
        }
        self.one = LiveServer("uvicorn", env=env)
        self.two = LiveServer("uvicorn", env=env)


@pytest.fixture(scope="module")
def pair(threaded_upstream: Upstream) -> Iterator[Pair]:
    with tempfile.TemporaryDirectory() as folder:
        servers = Pair(threaded_upstream, Path(folder) / "db.sqlite3")
        with servers.one, servers.two:
            for name in ("ada", "bob"):
                servers.one.create_user(name, PASSWORD)
            yield servers


def session(server: LiveServer, username: str | None) -> httpx.Client:
    """A client with a CSRF cookie and, for a username, a logged-in session."""
    cookies = server.log_in(username, PASSWORD) if username else {}
    client = httpx.Client(base_url=server.url, timeout=30, cookies=cookies)
    if "csrftoken" not in client.cookies:
        client.get("/admin/login/")
    return client


def start(client: httpx.Client, scenario: str) -> httpx.Response:
    return client.post(
        f"/llm/{scenario}/resumable/",
        json=HELLO,
        headers={"X-CSRFToken": client.cookies["csrftoken"]},
    )


def events_of(response: httpx.Response) -> list[MessageEvent]:
    return EventParser().feed(response.content)


def tokens(events: list[MessageEvent]) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.event == "token")


def test_another_user_and_anonymous_get_nothing_of_a_long_answer(pair: Pair) -> None:
    ada = session(pair.one, "ada")
    answer = start(ada, "slow-5-40")
    assert answer.status_code == 201, answer.text
    urls = answer.json()
    whole = events_of(ada.get(urls["stream_url"]))
    assert whole[-1].event == "done"
    pair.one.manage("sse_prune_history")
    # The owner still reads what history kept, after a reset, from either process.
    ada_there = session(pair.two, "ada")
    kept = events_of(ada_there.get(urls["stream_url"]))
    assert kept[0].event == "reset"
    assert kept[-1].event == "done"
    for server in (pair.one, pair.two):
        for intruder in (session(server, "bob"), session(server, None)):
            stop_headers = {"X-CSRFToken": intruder.cookies["csrftoken"]}
            tries = [
                intruder.get(urls["stream_url"]),
                intruder.get(urls["stream_url"], headers={"Last-Event-ID": "2"}),
                intruder.get(urls["stream_url"] + "?lastEventId=2"),
                intruder.post(urls["stop_url"], headers=stop_headers),
            ]
            assert [t.status_code for t in tries] == [403, 403, 403, 403]
            assert all(t.json()["error"]["code"] == "permission_denied" for t in tries)
            assert not any("t1 " in t.text for t in tries)


def test_running_answers_are_limited_across_both_processes(
    pair: Pair, threaded_upstream: Upstream
) -> None:
    for who in ("ada", None):
        here, there = session(pair.one, who), session(pair.two, who)
        running = [start(here, "slow-50-100"), start(there, "slow-50-100")]
        assert [r.status_code for r in running] == [201, 201]
        # A scenario of their own: had the model been asked, the upstream would show it.
        refused = [start(here, "slow-50-99"), start(there, "slow-50-99")]
        assert [r.status_code for r in refused] == [429, 429], who
        assert all(r.headers["Retry-After"] == "5" for r in refused)
        assert all(r.json()["error"]["code"] == "too_many_generations" for r in refused)
        for started, client in zip(running, (here, there), strict=True):
            urls = started.json()
            client.post(urls["stop_url"], headers={"X-CSRFToken": client.cookies["csrftoken"]})
            # Its row is ended before its last event is published.
            assert events_of(client.get(urls["stream_url"]))[-1].event == "done"
    assert not [r for r in threaded_upstream.requests if r.scenario == "slow-50-99"]


def test_an_answer_followed_on_the_other_process_is_abandoned_once_left(
    pair: Pair, threaded_upstream: Upstream
) -> None:
    ada, ada_there = session(pair.one, "ada"), session(pair.two, "ada")
    earlier = len(threaded_upstream.requests)
    answer = start(ada, "slow-50-200")
    assert answer.status_code == 201
    # The generation asks the model after its 201, and an earlier test's answer may
    # still be arriving: wait for this one's request, by its scenario.
    request = threaded_upstream.wait_request_sync(earlier)
    while request.scenario != "slow-50-200":
        earlier += 1
        request = threaded_upstream.wait_request_sync(earlier)
    urls = answer.json()
    # Followed from the other process for longer than the abandon period: heartbeats
    # through Redis keep the answer going.
    with ada_there.stream("GET", urls["stream_url"]) as response:
        parser, seen = EventParser(), []
        for chunk in response.iter_bytes():
            seen += parser.feed(chunk)
            if tokens(seen).count(" ") >= 70:  # 3.5 s of tokens
                break
    assert not request.client_closed
    # Left: within the abandon period the answer is stopped, and the model with it.
    request.wait_closed_sync(timeout=10.0)
    assert request.tokens_written < 200
    rest = events_of(ada.get(urls["stream_url"], headers={"Last-Event-ID": seen[-1].id or ""}))
    assert rest[-1].event == "done"
    assert json.loads(rest[-1].data)["finish_reason"] == "abandoned"
