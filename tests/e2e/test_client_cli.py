"""``python -m django_sse.client`` against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.servers import LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with LiveServer("uvicorn") as server:
        yield server.url


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "django_sse.client", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_json_lines(server_url: str) -> None:
    done = cli(f"{server_url}/counter/?n=5", "--json", "--limit", "2")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == [
        {"event": "message", "data": "0", "id": "0"},
        {"event": "message", "data": "1", "id": "1"},
    ]


def test_a_wrong_answer_is_an_error_and_not_retried(server_url: str) -> None:
    done = cli(f"{server_url}/post-echo/")
    assert done.returncode == 1
    assert "error: Expected 200 text/event-stream, got 405" in done.stderr


def test_text_format_until_the_server_ends(server_url: str) -> None:
    done = cli(f"{server_url}/counter/?n=2", "--no-reconnect")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "id: 0\ndata: 0\n\nid: 1\ndata: 1\n\n"


def test_headers_and_last_event_id_are_sent(server_url: str) -> None:
    done = cli(
        f"{server_url}/last-event-id/",
        "--no-reconnect",
        "--json",
        "--last-event-id",
        "41",
        "-H",
        "X-Ignored: yes",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(json.loads(done.stdout)["data"]) == {"last_event_id": "41"}


def test_a_malformed_header_is_a_usage_error(server_url: str) -> None:
    done = cli(f"{server_url}/counter/", "-H", "no-colon")
    assert done.returncode == 2
    assert "--header takes 'Name: value'" in done.stderr


def test_a_refused_connection_without_reconnect_is_a_clear_error() -> None:
    from tests.servers import free_port

    done = cli(f"http://127.0.0.1:{free_port()}/", "--no-reconnect")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr
