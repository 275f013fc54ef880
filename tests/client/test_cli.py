"""``python -m django_sse.client``: what a wrong invocation, or a request that can never
succeed, prints and exits with. Each run is a real process against a scripted server,
with a timeout: a run that retries forever fails the test instead of hanging it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.client.scripted_server import Gate, Hold, Reply, ThreadedScriptedServer, event_stream

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
        # Each of these used to get past the checks: a traceback from the resolver, or
        # reconnecting forever to the port 99999 wraps to.
        # The check connect() makes, whose message names the URL and what is wrong.
        ("http://a..b/events", "argument url: Invalid host in http://a..b/events: "),
        (f"http://{'a' * 64}.example/", "argument url: Invalid host in http://aaa"),
        ("http://xn--/events", "argument url: Invalid host in http://xn--/events: "),
        ("http://127.0.0.1:99999/events", "99999/events: 99999 is not from 1 to 65535"),
        ("http://127.0.0.1:0/events", "0/events: 0 is not from 1 to 65535"),
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


@pytest.mark.parametrize("count", ["-1", "few"])
def test_max_retries_takes_a_count(count: str) -> None:
    # A negative count gave up after one connection: "Gave up after -1 reconnection
    # attempt(s)", with status 1.
    done = cli("http://127.0.0.1/events", "--max-retries", count)
    assert_one_error_line(
        done, 2, f"argument --max-retries: takes a whole number from 0 up, not {count!r}"
    )


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (("-H", "X-Name: café"), "header X-Name must be ASCII"),
        # Each of these was sent, and h11 refused it: "error: Illegal header name", status 1.
        (("-H", "X Name: a"), "header names must be HTTP tokens such as 'X-Token', not 'X Name'"),
        (("-H", "X-Name: a\x01b"), "header X-Name must be ASCII with no control character"),
        (("--last-event-id", "4\n2"), "last_event_id must hold no control character"),
    ],
)
def test_a_header_http_cannot_carry_is_a_usage_error(option: tuple[str, str], says: str) -> None:
    done = cli("http://127.0.0.1/events", *option)
    assert_one_error_line(done, 2, says)


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


def test_a_reader_that_leaves_ends_the_run_quietly(
    threaded_server: ThreadedScriptedServer,
) -> None:
    # `python -m django_sse.client URL | head -1`: the next event found the pipe closed,
    # and the run ended with a BrokenPipeError traceback.
    reader_left = Gate()
    threaded_server.play(event_stream(b"data: a\n\n", Hold(reader_left), b"data: b\n\n", Hold()))
    command = [sys.executable, "-m", "django_sse.client", threaded_server.url()]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline() == "data: a\n"
        process.stdout.close()
        reader_left.open()
        returncode = process.wait(TIMEOUT)
        stderr = process.stderr.read()
    assert returncode == 141, stderr
    assert stderr == ""


@pytest.mark.parametrize(
    ("options", "printed"),
    [
        ((), b"data: caf\xe9 \\U0001f600\n\n"),
        (("--json",), b'{"event": "message", "data": "caf\\u00e9 \\ud83d\\ude00", "id": ""}\n'),
    ],
    ids=["text", "json"],
)
def test_an_output_that_cannot_carry_a_character_gets_an_escape(
    threaded_server: ThreadedScriptedServer, options: tuple[str, ...], printed: bytes
) -> None:
    # A Windows console or file, a Latin-1 locale: printing the emoji raised
    # UnicodeEncodeError, and the run ended with a traceback.
    threaded_server.play(event_stream("data: café 😀\n\n".encode()))
    command = [sys.executable, "-m", "django_sse.client", threaded_server.url(), *options]
    done = subprocess.run(
        [*command, "--no-reconnect"],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "latin-1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed
    if options:
        assert json.loads(done.stdout)["data"] == "café 😀"
