"""A stream's close path holds whatever cancels the response while it runs.

Django 5.0+ cancels the response's task when the client disconnects, daphne cancels it
again when it is slow to finish, a server stopping cancels everything. The tests here
cancel the task Django would be running at each of the close path's awaits, and check
that the generator's ``finally``, the stream log and ``on_close`` each still ran to the
end once, in that order, with the outcome decided before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest
from django.test import override_settings

from django_sse import Outcome, SSEResponse
from django_sse._closing import run_to_end, settle
from django_sse.protocol import EventParser
from django_sse.stats import StreamStats
from tests.test_response import forever, items, within

# The close path's steps, in the order they must run.
STEPS = ["finally", "log", "on_close"]


class Journal:
    """What happened to one stream, in order, and gates that hold its close's steps."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.outcomes: dict[str, Outcome | None] = {}
        self._entered = {step: asyncio.Event() for step in STEPS}
        self._gates: dict[str, asyncio.Event] = {}

    def hold(self, step: str) -> asyncio.Event:
        """Keep ``step`` waiting (at an await) until the returned event is set."""
        return self._gates.setdefault(step, asyncio.Event())

    async def entered(self, step: str) -> None:
        await within(self._entered[step].wait())

    async def run(self, step: str, outcome: Outcome | None = None) -> None:
        self.steps.append(step)
        self.outcomes[step] = outcome
        self._entered[step].set()
        gate = self._gates.get(step)
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)
        self.steps.append(f"{step} done")

    async def source(self, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for item in inner:
                yield item
        finally:
            await self.run("finally")

    async def on_close(self, outcome: Outcome) -> None:
        await self.run("on_close", outcome)

    def assert_closed_once(self, outcome: Outcome) -> None:
        assert self.steps == [part for step in STEPS for part in (step, f"{step} done")]
        assert self.outcomes["log"] == self.outcomes["on_close"] == outcome


class Observer:
    """A stream log that takes its time to write its row."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def opened(self, stats: StreamStats) -> None:
        pass

    async def closed(self, stats: StreamStats) -> None:
        await self.journal.run("log", stats.outcome)


def sse(journal: Journal, inner: AsyncIterator[Any], **options: Any) -> SSEResponse:
    return SSEResponse(
        journal.source(inner), on_close=journal.on_close, observer=Observer(journal), **options
    )


class Served:
    """A response served as Django's ASGI handler serves it, in a task of its own."""

    def __init__(self, response: SSEResponse) -> None:
        self.raw = b""
        self._arrived = asyncio.Event()
        self.task = asyncio.create_task(self._serve(response))

    async def _serve(self, response: SSEResponse) -> None:
        async with aclosing(aiter(response)) as content:  # type: ignore[type-var]
            async for chunk in content:
                self.raw += chunk
                self._arrived.set()

    async def received(self, data: bytes) -> None:
        while data not in self.raw:
            self._arrived.clear()
            await within(self._arrived.wait())

    async def cancel_twice(self) -> None:
        """Cancel the task, and again once that has landed (daphne does, each second,
        for an application slow to finish)."""
        self.task.cancel()
        await asyncio.sleep(0)
        self.task.cancel()


@pytest.mark.parametrize("step", ["log", "on_close"])
async def test_a_client_leaving_after_the_last_event_holds_every_step(step: str) -> None:
    """The race of a client that stops reading at the final event (close_on="done").

    (The generator's ``finally`` ran as it finished, in the pump: see
    test_a_finally_already_running_when_the_stream_ends_is_cancelled_once.)
    """
    journal = Journal()
    gate = journal.hold(step)
    served = Served(sse(journal, items("a", "done")))
    await journal.entered(step)
    await served.cancel_twice()
    gate.set()
    await within(asyncio.wait([served.task]))
    assert EventParser().feed(served.raw)[-1].data == "done"
    journal.assert_closed_once(Outcome.COMPLETED)


@pytest.mark.parametrize("step", STEPS)
async def test_a_disconnect_then_another_cancellation_hold_every_step(step: str) -> None:
    journal = Journal()
    gate = journal.hold(step)
    served = Served(sse(journal, forever()))
    await served.received(b"first")
    served.task.cancel()  # the client left
    await journal.entered(step)
    await served.cancel_twice()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await within(served.task)
    journal.assert_closed_once(Outcome.CLIENT_DISCONNECTED)


@pytest.mark.parametrize("step", STEPS)
async def test_a_timeout_as_the_client_leaves_holds_every_step(step: str) -> None:
    journal = Journal()
    gate = journal.hold(step)
    served = Served(sse(journal, forever(), max_duration=0.01, keep_alive=0))
    await journal.entered(step)
    await served.cancel_twice()
    gate.set()
    await within(asyncio.wait([served.task]))
    journal.assert_closed_once(Outcome.TIMEOUT)


async def test_a_finally_already_running_when_the_stream_ends_is_cancelled_once() -> None:
    """The source had returned from its last yield and was cleaning up when the client
    left: its await is cancelled once, as any wait of a source is when its stream ends,
    and what it shielded still finishes."""
    journal = Journal()
    entered, gate, shielded_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def shielded() -> None:
        await gate.wait()
        shielded_done.set()

    async def cleans_up_at_the_end() -> AsyncIterator[str]:
        try:
            yield "done"
        finally:
            entered.set()
            await asyncio.shield(shielded())

    served = Served(sse(journal, cleans_up_at_the_end()))
    await within(entered.wait())
    await served.cancel_twice()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await within(served.task)
    await within(shielded_done.wait())
    # The wrapper's finally, around the source, was started by that one cancellation.
    journal.assert_closed_once(Outcome.CLIENT_DISCONNECTED)


@override_settings(DJANGO_SSE={"CLEANUP_TIMEOUT": 0.05})
@pytest.mark.parametrize("step", STEPS)
async def test_a_step_that_never_ends_is_cancelled_and_the_rest_still_run(
    step: str, caplog: Any
) -> None:
    journal = Journal()
    journal.hold(step)  # never opened
    served = Served(sse(journal, forever()))
    await served.received(b"first")
    served.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(served.task)
    later = STEPS[STEPS.index(step) + 1 :]
    assert [s for s in journal.steps if not s.endswith(" done")] == STEPS
    assert f"{step} done" not in journal.steps
    assert all(f"{s} done" in journal.steps for s in later)
    assert "did not finish within 0.05 s and was cancelled" in caplog.text


async def test_a_source_that_raises_cancelled_error_itself_fails(caplog: Any) -> None:
    """It awaited something another task cancelled: an error, not a shutdown."""

    async def awaits_a_cancelled_future() -> AsyncIterator[str]:
        yield "before"
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.cancel)
        await future
        yield "never"

    journal = Journal()
    served = Served(sse(journal, awaits_a_cancelled_future()))
    await within(served.task)
    events = EventParser().feed(served.raw)
    assert [e.event for e in events] == ["message", "error"]
    assert events[1].json() == {"message": "The stream failed on the server."}
    journal.assert_closed_once(Outcome.ERROR)
    assert "Stream source raised CancelledError, though nothing cancelled the stream" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("debug", "message"),
    [(False, "The stream failed on the server."), (True, "bad \ufffd byte")],
)
async def test_an_error_whose_text_cannot_be_encoded_still_becomes_an_error_event(
    debug: bool, message: str
) -> None:
    async def raises() -> AsyncIterator[str]:
        yield "before"
        raise ValueError(b"bad \xff byte".decode("utf-8", "surrogateescape"))

    journal = Journal()
    with override_settings(DEBUG=debug):
        served = Served(sse(journal, raises()))
        await within(served.task)
    events = EventParser().feed(served.raw)
    assert [e.event for e in events] == ["message", "error"]
    assert events[1].json() == {"message": message}
    journal.assert_closed_once(Outcome.ERROR)


async def test_run_to_end_passes_the_cancellation_on_once_its_cleanup_is_done() -> None:
    done = asyncio.Event()
    gate = asyncio.Event()

    async def cleanup() -> None:
        await gate.wait()
        done.set()

    waiting = asyncio.create_task(run_to_end(cleanup()))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await within(waiting)
    assert done.is_set()


async def test_settle_logs_what_a_step_raised_and_never_raises(caplog: Any) -> None:
    async def fails() -> None:
        raise ValueError("hook failed")

    def not_async() -> None:
        return None

    await settle(fails, 1.0, "The failing step")
    await settle(not_async, 1.0, "The sync step")  # type: ignore[arg-type]
    assert "The failing step raised" in caplog.text
    assert "ValueError: hook failed" in caplog.text
    assert "The sync step raised" in caplog.text
