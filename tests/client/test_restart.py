"""``restart()`` and ``close()`` from outside the loop, at each point of a stream's life:
while it reads, while it waits between connections, while a connection is being made.
Each scenario on ``connect()`` and ``aconnect()`` (a blocked read: the sync client's
own), against the scripted raw HTTP server."""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from collections.abc import Callable
from types import FrameType

import pytest

from django_sse.client import (
    AsyncEventSource,
    EventSource,
    SSERedirectError,
    aconnect,
    connect,
)
from tests.client.drivers import Driver, Remote
from tests.client.scripted_server import (
    Gate,
    Hold,
    Reply,
    ScriptedServer,
    Signal,
    ThreadedScriptedServer,
    event_stream,
    no_content,
)

# Longer than every bound below: only a cut read ends a silence this long.
SILENCE = 120.0
# How long a test waits for what it expects; reached at once when the client works.
BOUND = 20.0


async def restart_while_waiting(source: Remote) -> None:
    await source.reached("reconnecting")
    await source.restart()


# ---------------------------------------------------------------------------
# During the wait between connections
# ---------------------------------------------------------------------------


async def test_a_restart_during_the_wait_reconnects_now_and_only_once(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(
        event_stream(b"retry: 60000\nid: 1\ndata: a\n\n"),
        event_stream(b"retry: 1\ndata: b\n\n"),
        no_content(),
    )
    run = await sse.run(server.url(), backoff_cap=20, remote=restart_while_waiting)
    assert run.data == ["a", "b"]
    assert server.requests[1].headers["last-event-id"] == "1"
    # The end of the second stream is an ordinary end: it waits the server's retry.
    assert run.states == ["connected", "reconnecting", "connected", "reconnecting", "closed"]
    assert [status.delay for status in run.reconnecting()] == [20.0, 0.001]


async def test_a_restart_during_the_wait_does_not_swallow_the_next_error(
    sse: Driver, server: ScriptedServer
) -> None:
    server.play(
        event_stream(b"retry: 60000\ndata: a\n\n"),
        Reply("302 Found", [("Location", "/b"), ("Content-Length", "0")]),
        Reply("302 Found", [("Location", "/events"), ("Content-Length", "0")]),
    )
    run = await sse.run(
        server.url(), backoff_cap=20, remote=restart_while_waiting, expect=SSERedirectError
    )
    assert run.states == ["connected", "reconnecting"]
    assert server.connections == 3


async def test_close_from_elsewhere_ends_the_wait(sse: Driver, server: ScriptedServer) -> None:
    server.play(event_stream(b"retry: 60000\ndata: a\n\n"))

    async def close_while_waiting(source: Remote) -> None:
        await source.reached("reconnecting")
        await source.close()

    run = await sse.run(server.url(), backoff_cap=20, remote=close_while_waiting)
    assert run.data == ["a"]
    assert run.states == ["connected", "reconnecting"]
    assert server.connections == 1


# ---------------------------------------------------------------------------
# While a connection is being made
# ---------------------------------------------------------------------------


async def test_a_restart_while_connecting_drops_that_attempt_only(
    sse: Driver, server: ScriptedServer
) -> None:
    asked, answer = Gate(), Gate()
    server.play(
        # No status line until the test has restarted: the client waits for the headers.
        Reply(
            None,
            body=(Signal(asked), Hold(answer), event_stream().head(), b"data: stale\n\n"),
        ),
        event_stream(b"retry: 1\ndata: b\n\n"),
        no_content(),
    )

    async def restart_while_connecting(source: Remote) -> None:
        await asked.wait()
        await source.restart()
        answer.open()

    run = await sse.run(server.url(), remote=restart_while_connecting)
    assert run.data == ["b"]
    assert run.states == ["restarting", "connected", "reconnecting", "closed"]
    assert server.connections == 3


@pytest.mark.parametrize("call", ["close", "aclose", "restart"])
async def test_a_call_from_another_task_cuts_a_wait_for_the_response_headers(
    server: ScriptedServer, call: str
) -> None:
    # A server that took the request and does not answer: the async client waited for
    # the headers until read_timeout, whatever another task asked of it meanwhile.
    asked = answer_nothing_then_b(server)
    seen: list[str] = []
    async with aconnect(server.url(), read_timeout=SILENCE) as source:

        async def iterate() -> None:
            async for event in source:
                seen.append(event.data)

        iteration = asyncio.ensure_future(iterate())
        await asked.wait()
        called = getattr(source, call)()
        if inspect.isawaitable(called):
            await called
        await asyncio.wait_for(iteration, BOUND)
    assert_cut(call, seen, server)


@pytest.mark.parametrize("call", ["close", "shutdown", "restart"])
async def test_a_call_from_another_thread_cuts_a_wait_for_the_response_headers(
    server: ScriptedServer, call: str
) -> None:
    # The sync client waited for the headers until read_timeout: it had no response to
    # cut yet, whatever another thread asked of it meanwhile.
    asked = answer_nothing_then_b(server)
    seen: list[str] = []
    with connect(server.url(), read_timeout=SILENCE) as source:

        def iterate() -> None:
            seen.extend(event.data for event in source)

        iteration = asyncio.ensure_future(asyncio.to_thread(iterate))
        await asked.wait()
        await asyncio.to_thread(getattr(source, call))
        await asyncio.wait_for(iteration, BOUND)
    # The connection made for that request is shut down too: its send ends at once.
    sends = [thread for thread in threading.enumerate() if thread.name == "sse-send"]

    def join_sends() -> None:
        for thread in sends:
            thread.join(BOUND)

    await asyncio.to_thread(join_sends)
    assert not any(thread.is_alive() for thread in sends)
    assert_cut(call, seen, server)


def answer_nothing_then_b(server: ScriptedServer) -> Gate:
    """A first request left without an answer (the Gate opens once it is in), then an
    event "b", then 204: the stream's end."""
    asked = Gate()
    server.play(
        Reply(None, body=(Signal(asked), Hold(timeout=SILENCE))),
        event_stream(b"retry: 1\ndata: b\n\n"),
        no_content(),
    )
    return asked


def assert_cut(call: str, seen: list[str], server: ScriptedServer) -> None:
    """A restart reconnected at once and read "b"; a close ended with nothing."""
    if call == "restart":
        assert seen == ["b"]
        assert server.connections == 3
    else:
        assert seen == []
        assert server.connections == 1


# ---------------------------------------------------------------------------
# While a read waits for a silent server (sync: closing a response does not wake it)
# ---------------------------------------------------------------------------


class RecvWatch:
    """Sets ``entered`` when the thread it is installed on next calls socket.recv().

    That thread keeps the GIL until recv() waits (switching takes milliseconds longer
    than what is left to run), so a thread woken by ``entered`` finds the read blocked.
    """

    def __init__(self) -> None:
        self.entered = threading.Event()

    def install(self) -> None:
        sys.setprofile(self._profile)

    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") == "recv":
            sys.setprofile(None)
            self.entered.set()


@pytest.mark.parametrize("call", ["restart", "close", "shutdown"])
def test_a_call_from_another_thread_cuts_a_blocked_read(
    threaded_server: ThreadedScriptedServer, call: str
) -> None:
    threaded_server.play(
        event_stream(b"id: 1\ndata: a\n\n", Hold(timeout=SILENCE)),
        event_stream(b"data: b\n\n", Hold(timeout=SILENCE)),
    )
    watch = RecvWatch()
    seen: list[str] = []
    ended = threading.Event()
    with connect(threaded_server.url(), read_timeout=SILENCE) as source:

        def iterate() -> None:
            try:
                for event in source:
                    seen.append(event.data)
                    if event.data == "a":
                        watch.install()
                    else:
                        source.close()
            finally:
                ended.set()

        # A daemon: a read that is never cut must not keep the test run alive.
        threading.Thread(target=iterate, daemon=True).start()
        assert watch.entered.wait(BOUND)
        getattr(source, call)()
        cut = ended.wait(BOUND)
    assert cut, f"{call}() from another thread left the read waiting"
    if call == "restart":
        assert seen == ["a", "b"]
        assert threaded_server.requests[1].headers["last-event-id"] == "1"
    else:
        assert seen == ["a"]
        assert len(threaded_server.requests) == 1


# ---------------------------------------------------------------------------
# A callback that raises while a restart or a close is under way
# ---------------------------------------------------------------------------


class WatchdogBroke(Exception):
    """The user's own bug, raised from a callback."""


def breaks_on(text: str) -> Callable[[str], None]:
    def on_comment(comment: str) -> None:
        if comment == text:
            raise WatchdogBroke(comment)

    return on_comment


async def test_a_callback_that_raises_during_a_restart_is_not_swallowed(
    sse: Driver, server: ScriptedServer
) -> None:
    # The comment comes in the same write as the event: the client reads it after the
    # restart asked inside the loop. Its error was taken for the cut connection's, and
    # the stream went on as if nothing had been raised.
    server.play(event_stream(b"data: a\n\n: boom\n\n", Hold()), event_stream(b"data: b\n\n"))
    run = await sse.run(
        server.url(), restart_after=1, on_comment=breaks_on("boom"), expect=WatchdogBroke
    )
    assert run.data == ["a"]
    assert server.connections == 1


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_callback_that_raises_after_close_is_not_swallowed(
    server: ScriptedServer, asynchronous: bool
) -> None:
    # A callback that closes the stream and then fails: the iteration ended quietly.
    server.play(event_stream(b": bye\n\n", Hold()))
    sources: list[EventSource | AsyncEventSource] = []

    def on_comment(text: str) -> None:
        sources[0].close()
        raise WatchdogBroke(text)

    if asynchronous:
        async with aconnect(server.url(), on_comment=on_comment) as source:
            sources.append(source)
            with pytest.raises(WatchdogBroke):
                async for _ in source:
                    pass
    else:

        def iterate() -> None:
            with connect(server.url(), on_comment=on_comment) as source:
                sources.append(source)
                with pytest.raises(WatchdogBroke):
                    for _ in source:
                        pass

        await asyncio.to_thread(iterate)
    assert server.connections == 1
