"""``python -m django_sse.client``: what a wrong invocation, or a request that can never
succeed, prints and exits with. Each run is a real process against a scripted server,
with a timeout: a run that retries forever fails the test instead of hanging it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.client.scripted_server import Reply, ThreadedScriptedServer, event_stream

# The longest one run may take; a working one ends in well under a second.
TIMEOUT = 30


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "django_sse.client", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def assert_one_error_line(done: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    [error] = [line for line in done.stderr.splitlines() if "error: " in line]
    assert says in error


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not-a-url", "not an http:// or https:// URL: 'not-a-url'"),
        ("http://", "not an http:// or https:// URL: 'http://'"),
        ("ftp://127.0.0.1/events", "not an http:// or https:// URL"),
        ("http://[::1", "not a URL: 'http://[::1'"),
    ],
)
def test_a_url_that_cannot_be_asked_is_a_usage_error(url: str, says: str) -> None:
    assert_one_error_line(cli(url), 2, says)


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_limit_takes_a_positive_number(limit: str) -> None:
    done = cli("http://127.0.0.1/events", "--limit", limit)
    assert_one_error_line(
        done, 2, f"argument --limit: takes a whole number from 1 up, not {limit!r}"
    )


def test_a_header_that_is_not_ascii_is_a_usage_error() -> None:
    done = cli("http://127.0.0.1/events", "-H", "X-Name: café")
    assert_one_error_line(done, 2, "--header takes ASCII only")


def test_a_redirect_loop_is_a_one_line_error(threaded_server: ThreadedScriptedServer) -> None:
    threaded_server.play(
        Reply("302 Found", [("Location", "/b"), ("Content-Length", "0")]),
        Reply("302 Found", [("Location", "/events"), ("Content-Length", "0")]),
    )
    done = cli(threaded_server.url())
    assert_one_error_line(done, 1, "Redirect loop: ")
    assert len(threaded_server.requests) == 2


def test_a_non_ascii_last_event_id_is_sent(threaded_server: ThreadedScriptedServer) -> None:
    threaded_server.play(event_stream(b"id: 2\ndata: a\n\n"))
    done = cli(threaded_server.url(), "--last-event-id", "café", "--limit", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "id: 2\ndata: a\n\n"
    sent = threaded_server.requests[0].headers["last-event-id"]
    assert sent.encode("latin-1") == "café".encode()
