"""Publishing to Pushpin in the background: in order, batched, never blocking, logged once
per outage."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from django_sse.broadcast import _grip, _pushpin, revoke

TIMEOUT = 10.0


class PublishEndpoint:
    """Pushpin's publish endpoint as far as publishers see it; ``hold`` keeps requests
    waiting until it is set, as Pushpin keeps a publish while it sends the one before."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        # The requests answered with 200: what Pushpin took.
        self.accepted: list[list[dict[str, Any]]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.status = 200
        self.arrived = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.requests.append(json.loads(body)["items"])
                endpoint.arrived.set()
                endpoint.hold.wait(TIMEOUT)
                status = endpoint.status
                if status == 200:
                    endpoint.accepted.append(endpoint.requests[-1])
                self.send_response(status)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.write(b"Published\n")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/publish/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[PublishEndpoint]:
    endpoint = PublishEndpoint()
    with override_settings(
        DJANGO_SSE={"PUSHPIN": {"PUBLISH_URL": endpoint.url, "SIG_KEY": "k", "TIMEOUT": 5}}
    ):
        yield endpoint
        assert _pushpin._publisher.drain(TIMEOUT)
    endpoint.close()


def item(n: int) -> dict[str, Any]:
    return {"channel": "c", "id": str(n), "formats": {"http-stream": {"content": str(n)}}}


def test_publishing_never_waits_and_what_queues_meanwhile_leaves_in_one_request(
    endpoint: PublishEndpoint,
) -> None:
    endpoint.hold.clear()  # Pushpin busy with a previous publish
    _pushpin.publish_items([item(1)])
    assert endpoint.arrived.wait(TIMEOUT)
    for n in range(2, 7):
        _pushpin.publish_items([item(n)])  # returns at once: nothing here waits
    endpoint.hold.set()
    assert _pushpin._publisher.drain(TIMEOUT)
    assert [[i["id"] for i in request] for request in endpoint.requests] == [
        ["1"],
        ["2", "3", "4", "5", "6"],
    ]


def test_an_outage_is_logged_once_and_its_end_once(endpoint: PublishEndpoint, caplog: Any) -> None:
    endpoint.status = 503
    for n in range(3):
        _pushpin.publish_items([item(n)])
        assert _pushpin._publisher.drain(TIMEOUT)
    endpoint.status = 200
    for n in range(3, 5):
        _pushpin.publish_items([item(n)])
        assert _pushpin._publisher.drain(TIMEOUT)
    logged = [r.getMessage() for r in caplog.records if "Pushpin at" in r.getMessage()]
    assert len(logged) == 2
    assert "failed" in logged[0]
    assert "works again" in logged[1]


def test_an_unexpected_error_is_logged_and_later_events_still_leave(
    endpoint: PublishEndpoint, caplog: Any
) -> None:
    # Not JSON: the request fails before it is sent, with no httpx error.
    _pushpin.publish_items([{"channel": "c", "id": "0", "formats": object()}])
    assert _pushpin._publisher.drain(TIMEOUT)
    _pushpin.publish_items([item(1)])
    assert _pushpin._publisher.drain(TIMEOUT)
    assert [[i["id"] for i in request] for request in endpoint.requests] == [["1"]]
    [failed] = [r for r in caplog.records if "items to Pushpin failed" in r.getMessage()]
    assert failed.exc_info is not None
    assert failed.exc_info[0] is TypeError


def test_without_pushpin_mode_nothing_is_queued() -> None:
    with override_settings(DJANGO_SSE={}):
        _pushpin.publish_items([item(1)])
    assert _pushpin._publisher.drain(0)


def test_a_revoke_pushpin_refused_is_sent_again_until_it_is_taken(
    endpoint: PublishEndpoint,
) -> None:
    # Only this close ends the user's streams that Pushpin holds: its recovery requests
    # carry no cookie, so nothing else would ever check the user's access again.
    endpoint.status = 503
    revoke("7", "private.room")
    assert endpoint.arrived.wait(TIMEOUT)
    endpoint.status = 200
    assert _pushpin._publisher.drain(TIMEOUT)
    assert endpoint.accepted == [[_grip.close_item("django_sse.", "7", "private.room")]]


def test_while_pushpin_lags_the_oldest_events_are_dropped_never_a_revoke(
    endpoint: PublishEndpoint, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(_pushpin._Publisher, "MAX_QUEUED_ITEMS", 20, raising=False)
    endpoint.hold.clear()  # Pushpin slow with a publish
    _pushpin.publish_items([item(0)])
    assert endpoint.arrived.wait(TIMEOUT)
    _pushpin.publish_items([item(1)])
    revoke("7", "c")
    for n in range(2, 100):
        _pushpin.publish_items([item(n)])
    endpoint.hold.set()
    assert _pushpin._publisher.drain(TIMEOUT)
    sent = [i.get("id", "close") for request in endpoint.requests[1:] for i in request]
    # Memory stays bounded; the newest events leave, each in history already (Pushpin
    # fetches the ones it missed when the next event of their channel comes).
    assert len(sent) <= 20
    assert sent[0] == "close"
    assert sent[1:] == [str(n) for n in range(100 - len(sent) + 1, 100)]
    assert sum("oldest queued for it" in r.getMessage() for r in caplog.records) == 1
