"""Run one demo example headless: ``python run_example.py N`` (1 to 5, an exercise:
chat-endpoint, progress or multisource, or client-cli).

Starts the demo under daphne on a free loopback port, reads the example's stream the
way a browser would, prints what arrived, and always stops the server. Exits 0 only
when the events really arrived (and, for Example 4, continued with no gap).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TextIO

import httpx

from django_sse.client import SSEResponseError, connect
from django_sse.protocol import EventParser, MessageEvent

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
# No read may wait longer than this: every stream here sends something each second.
READ_TIMEOUT = 10.0
READY = "Listening on TCP address"


class ExampleFailed(Exception):
    """The example did not behave as it should; the message says how."""


def main() -> int:
    parser = argparse.ArgumentParser(description="Run one demo example headless.")
    parser.add_argument("example", choices=sorted(EXAMPLES))
    example = EXAMPLES[parser.parse_args().example]
    # SIGTERM (e.g. from a CI runner) unwinds like Ctrl+C, so the server is stopped.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo.settings", "PYTHONUNBUFFERED": "1"}
    server = DemoServer(env)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
            cwd=HERE,
            env=env,
            check=True,
            timeout=120,
        )
        with server:
            example(server.url)
    except (ExampleFailed, SSEResponseError, httpx.HTTPError, subprocess.SubprocessError) as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        server.print_log(sys.stderr)
        return 1
    print("\nServer log while the example ran:")
    server.print_log(sys.stdout)
    return 0


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    sys.exit(128 + signum)


class DemoServer:
    """``daphne demo.asgi:application`` on a free loopback port, for a ``with`` block."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._env = env
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._ready_at: int | None = None
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._collect_output, daemon=True)

    def __enter__(self) -> DemoServer:
        command = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(self.port)]
        self._process = subprocess.Popen(
            [*command, "demo.asgi:application"],
            cwd=HERE,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            self._reader.start()
            if not self._ready.wait(STARTUP_TIMEOUT) or self._process.poll() is not None:
                raise ExampleFailed("daphne did not start:\n" + "".join(self._output))
        except BaseException:
            self.stop()
            raise
        print(f"Demo server listening on {self.url}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGINT (daphne ends open streams and exits), escalating to SIGKILL if it hangs."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._reader.join(timeout=5)  # the last lines it printed

    def print_log(self, file: TextIO) -> None:
        """What the server printed since it started listening (all of it if it never did)."""
        start = 0 if self._ready_at is None else self._ready_at + 1
        for line in self._output[start:]:
            print(f"  [server] {line}", end="", file=file)

    def _collect_output(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._output.append(line)
            if self._ready_at is None and READY in line:
                self._ready_at = len(self._output) - 1
                self._ready.set()
        self._ready.set()  # it exited: stop waiting


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def open_stream(
    client: httpx.Client, url: str, last_event_id: str = ""
) -> Iterator[Iterator[MessageEvent]]:
    """Connect like an EventSource (with Last-Event-ID to resume) and yield its events.

    Reconnection is off: each step of an example decides itself when to reconnect.
    """
    with connect(url, client=client, last_event_id=last_event_id, reconnect=False) as source:
        yield iter(source)


def take(events: Iterator[MessageEvent], count: int) -> list[MessageEvent]:
    """The next ``count`` events, failing if the stream ends first."""
    taken = list(itertools.islice(events, count))
    if len(taken) < count:
        raise ExampleFailed(f"the stream ended after {len(taken)} of {count} events")
    return taken


def show(event: MessageEvent) -> None:
    print(f"  event={event.event}  id={event.id or '-'}  data={event.data}")


def example_1(base_url: str) -> None:
    """Read three ticks of the basic clock stream."""
    url = f"{base_url}/examples/basic/stream/"
    print(f"Example 1: reading 3 events from {url}")
    with httpx.Client(timeout=READ_TIMEOUT) as client, open_stream(client, url) as events:
        ticks = take(events, 3)
    for event in ticks:
        show(event)
    numbers = [event.json()["n"] for event in ticks]
    if numbers != [0, 1, 2]:
        raise ExampleFailed(f"expected ticks 0, 1, 2, got {numbers}")
    print("OK: 3 ticks arrived, in order.")


def example_4(base_url: str) -> None:
    """Resume after a client disconnect and after a server-side drop; then the error event."""
    client_id = secrets.token_urlsafe(12)
    url = f"{base_url}/examples/production/stream/?client={client_id}"
    print(f"Example 4: production patterns at {url}")
    received: list[MessageEvent] = []
    with httpx.Client(timeout=READ_TIMEOUT) as client:
        print("\n1. Read 3 events, then disconnect.")
        with open_stream(client, url) as events:
            received += _shown(take(events, 3))

        last = received[-1].id
        print(f"\n2. Reconnect with Last-Event-ID: {last}, read 3 events, then press 'Drop'.")
        with open_stream(client, url, last_event_id=last) as events:
            received += _shown(take(events, 3))
            _drop(client, base_url, client_id)
            # The server ends the response; anything sent before the drop still counts.
            received += _shown(_until_end(events))
        print("   The server ended the stream.")

        last = received[-1].id
        print(f"\n3. Reconnect with Last-Event-ID: {last} (as the browser does) and read 3.")
        with open_stream(client, url, last_event_id=last) as events:
            received += _shown(take(events, 3))

        ids = [int(event.id) for event in received]
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise ExampleFailed(f"the ids have a gap or a duplicate: {ids}")
        print(f"\nOK: ids {' '.join(map(str, ids))} continue across both reconnects:")
        print("    no gap, no duplicate.")

        print("\n4. The failing generator: 3 events, then an error event.")
        with open_stream(client, f"{base_url}/examples/production/failing/") as events:
            failing = _shown(_until_end(events))
    kinds = [event.event for event in failing]
    if kinds != ["message"] * 3 + ["error"] or "message" not in failing[-1].json():
        raise ExampleFailed(f"expected 3 messages and an error event, got {kinds}")
    print(f"OK: the client got an error event: {failing[-1].json()['message']!r}")


def _shown(events: list[MessageEvent]) -> list[MessageEvent]:
    for event in events:
        show(event)
    return events


def _until_end(events: Iterator[MessageEvent], limit: int = 20) -> list[MessageEvent]:
    """Every event until the server ends the response; fails if it keeps going."""
    taken = list(itertools.islice(events, limit + 1))
    if len(taken) > limit:
        raise ExampleFailed(f"the server did not end the stream within {limit} events")
    return taken


def _drop(client: httpx.Client, base_url: str, client_id: str) -> None:
    """What the page's "Drop connection" button does: a POST with Django's CSRF token."""
    page = client.get(f"{base_url}/examples/production/")
    page.raise_for_status()
    token = client.cookies.get("csrftoken")
    if token is None:
        raise ExampleFailed("the page set no csrftoken cookie")
    response = client.post(
        f"{base_url}/examples/production/drop/",
        data={"client": client_id},
        headers={"X-CSRFToken": token},
    )
    if response.status_code != 200:
        raise ExampleFailed(f"the drop endpoint answered {response.status_code}")


def example_2(base_url: str) -> None:
    """Ask the chat; drop the stream mid-answer and resume it; then stop an answer."""
    with httpx.Client(timeout=READ_TIMEOUT) as client:
        client.get(f"{base_url}/examples/chat/").raise_for_status()
        headers = {"X-CSRFToken": client.cookies.get("csrftoken") or ""}
        question = {"prompt": "What are Server-Sent Events good for?"}
        print(f"> {question['prompt']}")
        started = _start_answer(client, base_url, question, headers)
        stream_url = base_url + started["stream_url"]

        before = _read_answer(client, stream_url, None, stop_after=5)
        print("\n[connection dropped; resuming after event", before[-1].id, "]")
        after = _read_answer(client, stream_url, before[-1].id)
        print()
        events = before + after
        if events[-1].event != "done":
            raise ExampleFailed(f"the answer did not end with a done event: {events[-1]}")
        print(f"[done] {events[-1].data}")
        ids = [int(event.id or 0) for event in events]
        if ids != list(range(1, len(ids) + 1)):
            raise ExampleFailed(f"the resumed answer has a gap or a repeat: ids {ids}")
        whole = _read_answer(client, stream_url, None, quiet=True)
        if _text(whole) != _text(events):
            raise ExampleFailed("the resumed answer differs from the answer read in one go")

        started = _start_answer(client, base_url, question, headers)
        stream_url = base_url + started["stream_url"]
        _read_answer(client, stream_url, None, stop_after=3, quiet=True)
        client.post(base_url + started["stop_url"], headers=headers).raise_for_status()
        ending = _read_answer(client, stream_url, None, quiet=True)[-1]
        if ending.event != "done" or ending.json()["finish_reason"] != "stopped":
            raise ExampleFailed(f"a stopped answer ended with {ending}")
    print("OK: the answer resumed after a drop with no gap or repeat, and Stop ended another.")


def _start_answer(
    client: httpx.Client, base_url: str, question: dict[str, str], headers: dict[str, str]
) -> dict[str, str]:
    """What the page's form does: POST the question, get the answer's URLs back."""
    response = client.post(f"{base_url}/examples/chat/answer/", data=question, headers=headers)
    if response.status_code != 201:
        raise ExampleFailed(f"starting an answer gave {response.status_code}: {response.text}")
    started: dict[str, str] = response.json()
    return started


def _read_answer(
    client: httpx.Client,
    url: str,
    last_event_id: str | None,
    stop_after: int | None = None,
    quiet: bool = False,
) -> list[MessageEvent]:
    """The answer's events from after ``last_event_id``, until it ends (or ``stop_after``
    tokens, leaving the stream as a dropped connection would)."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    events: list[MessageEvent] = []
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            raise ExampleFailed(f"following the answer gave {response.status_code}")
        parser = EventParser()
        for chunk in response.iter_raw():
            for event in parser.feed(chunk):
                events.append(event)
                if event.event == "token" and not quiet:
                    print(event.json()["text"], end="", flush=True)
            tokens = sum(event.event == "token" for event in events)
            if stop_after is not None and tokens >= stop_after:
                break
    return events


def _text(events: list[MessageEvent]) -> str:
    return "".join(event.json()["text"] for event in events if event.event == "token")


def example_3(base_url: str) -> None:
    """Consume the production stream with the async client (client_consumption.py)."""
    from client_consumption import consume

    print(f"Example 3: the async client reads 5 events from {base_url}")
    numbers = asyncio.run(consume(base_url, 5))
    if numbers != list(range(numbers[0], numbers[0] + 5)):
        raise ExampleFailed(f"expected 5 consecutive events, got {numbers}")
    print("OK: 5 consecutive events arrived through django_sse.client.")


def example_5(base_url: str) -> None:
    """The live room: history replay, resume of two channels, and sse_publish's feed."""
    room = f"run-{secrets.token_hex(4)}"
    url = f"{base_url}/examples/room/{room}/stream/"
    print(f"Example 5: the live room #{room}")
    with httpx.Client(timeout=READ_TIMEOUT) as client:
        print("\n1. Post 3 messages, then read them from the room's history.")
        for text in ("one", "two", "three"):
            _post_message(client, base_url, room, text)
        # The room channel from its start; the feed from now on.
        with open_stream(client, url, last_event_id=f"room.{room}:0") as events:
            first = _shown(take(events, 3))
        _expect_chat(first, ["one", "two", "three"])

        print("\n2. Disconnected: post 2 more, and publish to the feed from a terminal.")
        for text in ("four", "five"):
            _post_message(client, base_url, room, text)
        command = [sys.executable, "manage.py", "sse_publish", "feed", f"hello {room}"]
        print(f"$ {' '.join(command[1:])}")
        subprocess.run(command, cwd=HERE, check=True, timeout=60)

        last = first[-1].id
        print(f"\n3. Reconnect with Last-Event-ID: {last} and read what was missed.")
        with open_stream(client, url, last_event_id=last) as events:
            missed = _shown(take(events, 3))
    _expect_chat([event for event in missed if event.event == "chat"], ["four", "five"])
    feed = [event.data for event in missed if event.event == "message"]
    if feed != [f"hello {room}"]:
        raise ExampleFailed(f"expected the feed message once, got {feed}")
    print("OK: history replayed both channels after the reconnect, each event once.")


def _post_message(client: httpx.Client, base_url: str, room: str, text: str) -> None:
    """What the room page's form does: a POST with Django's CSRF token."""
    client.get(f"{base_url}/examples/room/{room}/").raise_for_status()
    response = client.post(
        f"{base_url}/examples/room/{room}/post/",
        data={"name": "run_example", "text": text},
        headers={"X-CSRFToken": client.cookies.get("csrftoken") or ""},
    )
    if response.status_code != 200:
        raise ExampleFailed(f"posting answered {response.status_code}: {response.text}")


def _expect_chat(events: list[MessageEvent], texts: list[str]) -> None:
    expected = [f"<li><b>run_example</b>: {text}</li>" for text in texts]
    if [event.data for event in events] != expected or any(e.event != "chat" for e in events):
        raise ExampleFailed(f"expected chat messages {texts}, got {[e.data for e in events]}")


def chat_endpoint(base_url: str) -> None:
    """Exercise: the chat endpoint answers a form's POST in its own response."""
    with httpx.Client(timeout=READ_TIMEOUT) as client:
        headers = _csrf_headers(client, f"{base_url}/examples/chat-endpoint/")
        data = {"prompt": "Hello"}
        url = f"{base_url}/examples/chat-endpoint/answer/"
        events = _post_stream(client, url, data, headers)
    text = _text(events)
    print(text)
    if events[-1].event != "done" or not text:
        raise ExampleFailed(f"expected tokens and a done event, got {events[-3:]}")
    print(f"OK: {len(text)} characters of answer, then done: {events[-1].data}")


def progress(base_url: str) -> None:
    """Exercise: a long task's progress, percentage and ETA, until done."""
    with httpx.Client(timeout=READ_TIMEOUT) as client:
        headers = _csrf_headers(client, f"{base_url}/examples/progress/")
        url = f"{base_url}/examples/progress/stream/"
        events = _post_stream(client, url, {}, headers)
    percents = [event.json()["percent"] for event in events if event.event == "progress"]
    for event in events[:: max(1, len(events) // 6)]:
        show(event)
    if percents != sorted(percents) or percents[-1] != 100 or events[-1].event != "done":
        raise ExampleFailed(f"progress went {percents} and ended with {events[-1]}")
    print(f"OK: {len(percents)} progress events from 0 to 100 %, then done.")


def multisource(base_url: str) -> None:
    """Exercise: three sources merged into one stream, each as its own event type."""
    url = f"{base_url}/examples/multisource/stream/"
    with httpx.Client(timeout=READ_TIMEOUT) as client, open_stream(client, url) as stream:
        events = take(stream, 12)
    for event in events:
        show(event)
    if {"clock", "build"} - {event.event for event in events}:
        raise ExampleFailed(f"expected clock and build events, got {[e.event for e in events]}")
    print("OK: the merged stream carries events of several sources.")


def _csrf_headers(client: httpx.Client, page_url: str) -> dict[str, str]:
    client.get(page_url).raise_for_status()
    return {"X-CSRFToken": client.cookies.get("csrftoken") or ""}


def _post_stream(
    client: httpx.Client, url: str, data: dict[str, str], headers: dict[str, str]
) -> list[MessageEvent]:
    """Every event of a POST stream, until the server ends it."""
    events: list[MessageEvent] = []
    with client.stream("POST", url, data=data, headers=headers) as response:
        if response.status_code != 200:
            raise ExampleFailed(f"{url} answered {response.status_code}")
        parser = EventParser()
        for chunk in response.iter_raw():
            events += parser.feed(chunk)
    if not events:
        raise ExampleFailed(f"{url} sent no events")
    return events


def client_cli(base_url: str) -> None:
    """``python -m django_sse.client`` against the demo: what ``make test-client`` runs."""
    url = f"{base_url}/examples/basic/stream/"
    command = [sys.executable, "-m", "django_sse.client", url, "--json", "--limit", "3"]
    print(f"$ {' '.join(command[1:])}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    print(done.stdout, end="")
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 3:
        raise ExampleFailed(f"the CLI exited {done.returncode} with:\n{done.stdout}{done.stderr}")
    numbers = [json.loads(json.loads(line)["data"])["n"] for line in lines]
    if numbers != [0, 1, 2]:
        raise ExampleFailed(f"expected ticks 0, 1, 2 from the CLI, got {numbers}")
    print("OK: the CLI printed 3 events as JSON lines.")


EXAMPLES: dict[str, Callable[[str], None]] = {
    "1": example_1,
    "2": example_2,
    "3": example_3,
    "4": example_4,
    "5": example_5,
    "chat-endpoint": chat_endpoint,
    "progress": progress,
    "multisource": multisource,
    "client-cli": client_cli,
}

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the server was stopped on the way out
        sys.exit(130)
