"""Drivers for the client tests: one scenario, run on ``connect()`` and on ``aconnect()``,
recording what the client saw."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from django_sse.client import AsyncEventSource, ClientStatus, EventSource, aconnect, connect
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


class Remote(ABC):
    """A run's source, acted on from outside its loop as an application would: from
    another thread (sync) or another task (async). Made on the test's event loop."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def on_status(self, status: ClientStatus) -> None:
        """Record a status; called on the client's thread or task."""
        self._run.statuses.append(status)
        self._loop.call_soon_threadsafe(self._changed.set)

    async def reached(self, state: str, count: int = 1) -> None:
        """Wait until the client has reported ``state`` ``count`` times."""
        # Each status is recorded before the event is set: none is missed between the
        # check and the wait.
        while self._run.states.count(state) < count:
            await self._changed.wait()
            self._changed.clear()

    @abstractmethod
    async def restart(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


class SyncRemote(Remote):
    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self._source: asyncio.Future[EventSource] = self._loop.create_future()

    def opened(self, source: EventSource) -> None:
        self._loop.call_soon_threadsafe(self._source.set_result, source)

    async def restart(self) -> None:
        await asyncio.to_thread((await self._source).restart)

    async def close(self) -> None:
        await asyncio.to_thread((await self._source).close)


class AsyncRemote(Remote):
    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self._source: asyncio.Future[AsyncEventSource] = self._loop.create_future()

    def opened(self, source: AsyncEventSource) -> None:
        self._source.set_result(source)

    async def restart(self) -> None:
        await (await self._source).restart()

    async def close(self) -> None:
        (await self._source).close()


RemoteScript = Callable[[Remote], Awaitable[object]]


class Driver(ABC):
    """Runs a client to the end of its iteration and reports what it saw.

    ``stop_after``: call ``source.close()`` inside the loop after that many events.
    ``on_event``: called with each event inside the loop (on the sync client's thread).
    ``expect``: the exception the run must end with; any other is raised.
    ``remote``: a coroutine run beside the client, handed a :class:`Remote` to act on
    the source from outside the loop; the run waits for it too.
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
        remote: RemoteScript | None = None,
        **options: Any,
    ) -> Run:
        """``restart_after``: call ``source.restart()`` once, after that many events."""
        run = Run()
        self.restart_after = restart_after
        handle = self.remote(run)
        iteration = self._run(url, run, stop_after, on_event, handle, options)
        if remote is None:
            await iteration
        else:
            await asyncio.wait_for(asyncio.gather(iteration, remote(handle)), RUN_LIMIT)
        if run.error is not None and (expect is None or not isinstance(run.error, expect)):
            raise run.error
        if expect is not None and run.error is None:
            pytest.fail(f"{self.name} client: expected {expect.__name__}, nothing was raised")
        return run

    async def run_through(self, client_options: dict[str, Any], url: str, **options: Any) -> Run:
        """``run()`` with an httpx client of the caller's, made with ``client_options``
        and closed afterwards."""
        http = self.new_client(**client_options)
        try:
            return await self.run(url, client=http, **options)
        finally:
            await self.close_client(http)

    @abstractmethod
    def remote(self, run: Run) -> Remote: ...

    @abstractmethod
    async def _run(
        self,
        url: str,
        run: Run,
        stop_after: int | None,
        on_event: Callable[[MessageEvent], object] | None,
        remote: Remote,
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

    def remote(self, run: Run) -> SyncRemote:
        return SyncRemote(run)

    async def _run(
        self,
        url: str,
        run: Run,
        stop_after: int | None,
        on_event: Callable[[MessageEvent], object] | None,
        remote: Remote,
        options: dict[str, Any],
    ) -> None:
        assert isinstance(remote, SyncRemote)
        sources: list[Any] = []

        def iterate() -> None:
            try:
                with connect(url, on_status=remote.on_status, **options) as source:
                    sources.append(source)
                    remote.opened(source)
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

    def remote(self, run: Run) -> AsyncRemote:
        return AsyncRemote(run)

    async def _run(
        self,
        url: str,
        run: Run,
        stop_after: int | None,
        on_event: Callable[[MessageEvent], object] | None,
        remote: Remote,
        options: dict[str, Any],
    ) -> None:
        assert isinstance(remote, AsyncRemote)

        async def iterate() -> None:
            try:
                async with aconnect(url, on_status=remote.on_status, **options) as source:
                    remote.opened(source)
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
