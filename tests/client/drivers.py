"""Drivers for the client tests: one scenario, run on ``connect()`` and on ``aconnect()``,
recording what the client saw."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from django_sse.client import ClientStatus, aconnect, connect
from django_sse.protocol import MessageEvent

# The longest a client run may take before the test fails.
RUN_LIMIT = 30.0


@dataclass
class Run:
    """What one client run saw."""

    events: list[MessageEvent] = field(default_factory=list)
    statuses: list[ClientStatus] = field(default_factory=list)
    error: BaseException | None = None
    last_event_id: str = ""
    reconnection_time: int | None = None

    @property
    def states(self) -> list[str]:
        return [status.state for status in self.statuses]

    @property
    def data(self) -> list[str]:
        return [event.data for event in self.events]

    def reconnecting(self) -> list[ClientStatus]:
        return [status for status in self.statuses if status.state == "reconnecting"]


class Driver(ABC):
    """Runs a client to the end of its iteration and reports what it saw.

    ``stop_after``: call ``source.close()`` inside the loop after that many events.
    ``on_event``: called with each event inside the loop (on the sync client's thread).
    ``expect``: the exception the run must end with; any other is raised.
    """

    name: str
    restart_after: int | None = None

    async def run(
        self,
        url: str,
        *,
        stop_after: int | None = None,
        on_event: Callable[[MessageEvent], object] | None = None,
        expect: type[BaseException] | None = None,
        restart_after: int | None = None,
        **options: Any,
    ) -> Run:
        """``restart_after``: call ``source.restart()`` once, after that many events."""
        run = Run()
        self.restart_after = restart_after
        await self._run(url, run, stop_after, on_event, options)
        if run.error is not None and (expect is None or not isinstance(run.error, expect)):
            raise run.error
        if expect is not None and run.error is None:
            pytest.fail(f"{self.name} client: expected {expect.__name__}, nothing was raised")
        return run

    @abstractmethod
    async def _run(
        self,
        url: str,
        run: Run,
        stop_after: int | None,
        on_event: Callable[[MessageEvent], object] | None,
        options: dict[str, Any],
    ) -> None: ...

    @abstractmethod
    def new_client(self, **kwargs: Any) -> httpx.Client | httpx.AsyncClient: ...

    @abstractmethod
    async def close_client(self, client: httpx.Client | httpx.AsyncClient) -> None: ...


def _after_event(
    run: Run,
    event: MessageEvent,
    stop_after: int | None,
    on_event: Callable[[MessageEvent], object] | None,
) -> bool:
    """Record an event; True when the loop should call ``source.close()``."""
    run.events.append(event)
    if on_event is not None:
        on_event(event)
    return stop_after is not None and len(run.events) >= stop_after


class SyncDriver(Driver):
    name = "sync"

    async def _run(
        self,
        url: str,
        run: Run,
        stop_after: int | None,
        on_event: Callable[[MessageEvent], object] | None,
        options: dict[str, Any],
    ) -> None:
        sources: list[Any] = []

        def iterate() -> None:
            try:
                with connect(url, on_status=run.statuses.append, **options) as source:
                    sources.append(source)
                    try:
                        for event in source:
                            if _after_event(run, event, stop_after, on_event):
                                source.close()
                            if len(run.events) == self.restart_after:
                                source.restart()
                    finally:
                        run.last_event_id = source.last_event_id
                        run.reconnection_time = source.reconnection_time
            except Exception as exc:
                run.error = exc

        try:
            await asyncio.wait_for(asyncio.to_thread(iterate), RUN_LIMIT)
        except asyncio.TimeoutError:
            # The thread cannot be cancelled: ask it to stop at its next step.
            for source in sources:
                source.close()
            raise

    def new_client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(**kwargs)

    async def close_client(self, client: httpx.Client | httpx.AsyncClient) -> None:
        assert isinstance(client, httpx.Client)
        await asyncio.to_thread(client.close)


class AsyncDriver(Driver):
    name = "async"

    async def _run(
        self,
        url: str,
        run: Run,
        stop_after: int | None,
        on_event: Callable[[MessageEvent], object] | None,
        options: dict[str, Any],
    ) -> None:
        async def iterate() -> None:
            try:
                async with aconnect(url, on_status=run.statuses.append, **options) as source:
                    try:
                        async for event in source:
                            if _after_event(run, event, stop_after, on_event):
                                source.close()
                            if len(run.events) == self.restart_after:
                                await source.restart()
                    finally:
                        run.last_event_id = source.last_event_id
                        run.reconnection_time = source.reconnection_time
            except Exception as exc:
                run.error = exc

        await asyncio.wait_for(iterate(), RUN_LIMIT)

    def new_client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**kwargs)

    async def close_client(self, client: httpx.Client | httpx.AsyncClient) -> None:
        assert isinstance(client, httpx.AsyncClient)
        await client.aclose()
