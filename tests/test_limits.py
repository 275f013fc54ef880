"""STREAM_LIMIT_PER_USER / STREAM_LIMIT_PER_ADDRESS in-process: refusals before any byte,
slots given back at every ending, and the ways around a limit that must not work."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.test import AsyncClient, AsyncRequestFactory, override_settings

from django_sse import SSEView, _claim, _limits
from django_sse.response import SSEResponse
from django_sse.stats import StreamStats
from tests.sse import collect
from tests.views import GateView

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    caches["default"].clear()
    yield
    caches["default"].clear()


def limits(**values: Any) -> Any:
    return override_settings(DJANGO_SSE=values)


# Seconds to wait for what must happen at once; only a failing test waits that long.
WAIT = 5.0


class Narrow(GateView):
    stream_limit_per_address = 1


class Pair(GateView):
    stream_limit_per_address = 2


class Roomy(GateView):
    stream_limit_per_address = 5


class SyncStream(SSEView):
    # A sync generator, which SSEView refuses.
    def stream(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Iterator[Any]:
        yield "sync"


class BadRetry(GateView):
    retry = -1


async def call(view: type[SSEView], **initkwargs: Any) -> Any:
    """Run an async class-based view outside any URL, for the test client's address;
    django-stubs types as_view() as sync."""
    request = AsyncRequestFactory().get("/", {"probe": uuid.uuid4().hex})
    return await view.as_view(**initkwargs)(request)  # type: ignore[misc]


class Held:
    """Streams opened and held open by a test, closed at its end."""

    def __init__(self) -> None:
        self.engines: list[Any] = []

    async def open(self, client: AsyncClient, path: str = "/gate/", **extra: Any) -> Any:
        return await self.start(await client.get(path, {"probe": uuid.uuid4().hex}, **extra))

    async def call(self, view: type[SSEView], **initkwargs: Any) -> Any:
        return await self.start(await call(view, **initkwargs))

    async def start(self, response: Any) -> Any:
        """Stream ``response`` up to its first bytes, if it is a stream."""
        if isinstance(response, SSEResponse):
            engine = response._engine
            assert await anext(engine) == b":\n"
            self.engines.append(engine)
        return response

    async def close(self, count: int | None = None) -> None:
        for engine in self.engines[:count]:
            await engine.aclose()
        self.engines = self.engines[count:] if count is not None else []


@pytest.fixture
async def held() -> AsyncIterator[Held]:
    streams = Held()
    yield streams
    await streams.close()


async def logged_in(django_user_model: Any, username: str) -> AsyncClient:
    user = await django_user_model.objects.acreate(username=username)
    client = AsyncClient()
    await sync_to_async(client.force_login)(user)
    return client


def assert_refused(response: Any) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == str(_limits.RETRY_AFTER)
    assert not isinstance(response, SSEResponse)
    assert b"Too many streams" in response.content


async def test_a_user_over_the_limit_is_refused_before_any_byte(
    django_user_model: Any, held: Held, caplog: pytest.LogCaptureFixture
) -> None:
    ada = await logged_in(django_user_model, "limited-ada")
    with limits(STREAM_LIMIT_PER_USER=2):
        await held.open(ada)
        await held.open(ada)
        with caplog.at_level(logging.WARNING, logger="django_sse"):
            refused = await held.open(ada)
    assert_refused(refused)
    assert b"you have 2 open" in refused.content
    assert "STREAM_LIMIT_PER_USER" in caplog.text
    assert "Refused a stream at /gate/" in caplog.text


async def test_other_users_and_anonymous_clients_are_not_counted_with_them(
    django_user_model: Any, held: Held
) -> None:
    ada = await logged_in(django_user_model, "limited-ada")
    bob = await logged_in(django_user_model, "limited-bob")
    with limits(STREAM_LIMIT_PER_USER=1, STREAM_LIMIT_PER_ADDRESS=1):
        await held.open(ada)
        assert (await held.open(bob)).status_code == 200
        # Same address (the test client's) as ada and bob: anonymous clients are
        # counted per address, logged-in users per user.
        assert (await held.open(AsyncClient())).status_code == 200
        assert_refused(await held.open(AsyncClient()))
        assert_refused(await held.open(ada))


async def test_a_slot_is_given_back_when_a_stream_closes(
    django_user_model: Any, held: Held
) -> None:
    ada = await logged_in(django_user_model, "limited-ada")
    with limits(STREAM_LIMIT_PER_USER=1):
        await held.open(ada)
        assert_refused(await held.open(ada))
        await held.close()
        assert (await held.open(ada)).status_code == 200


@pytest.mark.parametrize("path", ["/error/", "/timeout/", "/counter/"])
async def test_every_ending_gives_the_slot_back(path: str) -> None:
    with limits(STREAM_LIMIT_PER_ADDRESS=1):
        for _ in range(3):
            response = await AsyncClient().get(path)
            assert isinstance(response, SSEResponse)
            await collect(response.streaming_content)


async def test_anonymous_clients_are_limited_per_address_and_cannot_spoof_one(
    held: Held,
) -> None:
    anonymous = AsyncClient()
    with limits(STREAM_LIMIT_PER_ADDRESS=2):
        await held.open(anonymous)
        await held.open(anonymous)
        # Without CLIENT_ADDRESS_HEADER, what the client says of its address is ignored.
        refused = await held.open(anonymous, headers={"X-Forwarded-For": "198.51.100.7"})
        assert_refused(refused)
        assert b"your address has 2 open" in refused.content


async def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(
    held: Held,
) -> None:
    client = AsyncClient()

    def forwarded(address: str) -> dict[str, str]:
        # The proxy appends the address it saw; the client may have put anything before.
        return {"X-Forwarded-For": f"10.0.0.1, {address}"}

    with limits(STREAM_LIMIT_PER_ADDRESS=1, CLIENT_ADDRESS_HEADER="X-Forwarded-For"):
        await held.open(client, headers=forwarded("203.0.113.1"))
        assert_refused(await held.open(client, headers=forwarded("203.0.113.1")))
        assert (await held.open(client, headers=forwarded("203.0.113.2"))).status_code == 200


async def test_a_view_sets_its_own_limits(django_user_model: Any, held: Held) -> None:
    ada = await logged_in(django_user_model, "limited-ada")
    await held.open(ada, "/limited-gate/")
    assert_refused(await held.open(ada, "/limited-gate/"))
    # Its limit counts the user's streams of every view; other views have none here.
    assert (await held.open(ada, "/gate/")).status_code == 200


async def test_a_views_own_limit_counts_the_streams_of_every_view(held: Held) -> None:
    await held.call(Narrow)
    await held.call(Roomy)
    await held.close(1)
    # The slot Narrow's first stream had is free, but Roomy's stream is open.
    assert_refused(await held.call(Narrow))
    for _ in range(4):
        assert (await held.call(Roomy)).status_code == 200
    assert_refused(await held.call(Roomy))


async def test_a_limit_given_to_as_view_counts_in_every_view(held: Held) -> None:
    for _ in range(7):
        await held.call(GateView, stream_limit_per_address=7)
    # As if the leases of all but the two slots numbered highest had run out.
    slots = [f"django_sse:stream-slot:address:127.0.0.1:{number}" for number in range(5)]
    await caches["default"].adelete_many(slots)
    assert_refused(await held.call(Pair))


async def test_streams_starting_together_for_the_last_place_let_one_in(
    held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    await held.call(Pair)
    await held.call(Pair)
    await held.call(Roomy)
    await held.close(2)
    # Each of the three takes a slot before any of them counts again: all three count
    # one too many, and only after trying again one of them gets the last place.
    adds, all_added = 0, asyncio.Event()
    add = LocMemCache.aadd

    async def add_together(cache: LocMemCache, *args: Any, **kwargs: Any) -> bool:
        nonlocal adds
        added = await add(cache, *args, **kwargs)
        adds += 1
        if adds == 3:
            all_added.set()
        await all_added.wait()
        return added

    monkeypatch.setattr(LocMemCache, "aadd", add_together)
    racing = await asyncio.wait_for(asyncio.gather(*(held.call(Pair) for _ in range(3))), WAIT)
    assert sorted(response.status_code for response in racing) == [200, 429, 429]


async def test_a_limit_out_of_range_counts_nowhere(
    held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view's limit beyond the setting's maximum is refused where it is used, and
    must not make every other view count its streams among that many slots."""
    over = 1001  # STREAM_LIMIT_PER_ADDRESS may be 1000 at most

    class Oversized(GateView):
        stream_limit_per_address = over

    with pytest.raises(ImproperlyConfigured, match="from 0 to 1000"):
        await call(Oversized)
    asked: list[int] = []
    get_many = LocMemCache.aget_many

    async def counting(cache: LocMemCache, keys: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(len(keys))
        return await get_many(cache, keys, *args, **kwargs)

    monkeypatch.setattr(LocMemCache, "aget_many", counting)
    assert (await held.call(Pair)).status_code == 200
    assert asked
    assert max(asked) < over


@pytest.mark.parametrize(("view", "error"), [(SyncStream, TypeError), (BadRetry, ValueError)])
async def test_a_stream_that_fails_to_start_gives_its_slot_back(
    view: type[SSEView], error: type[Exception], held: Held
) -> None:
    with limits(STREAM_LIMIT_PER_ADDRESS=1):
        with pytest.raises(error):
            await call(view)
        assert (await held.open(AsyncClient())).status_code == 200


async def test_a_request_cancelled_as_its_slot_is_taken_gives_it_back(
    held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Django cancels a view whose client has left: here, once the slot is taken and
    before the view has the cache's answer."""
    taken = asyncio.Event()
    add = LocMemCache.aadd

    async def add_unanswered(cache: LocMemCache, *args: Any, **kwargs: Any) -> bool:
        await add(cache, *args, **kwargs)
        taken.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    with limits(STREAM_LIMIT_PER_ADDRESS=1):
        monkeypatch.setattr(LocMemCache, "aadd", add_unanswered)
        request = asyncio.create_task(AsyncClient().get("/gate/"))
        await asyncio.wait_for(taken.wait(), WAIT)
        monkeypatch.undo()
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        assert (await held.open(AsyncClient())).status_code == 200


async def test_a_slot_whose_stream_never_opens_is_given_back_after_its_task(
    held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response made in a task that ends without sending it, as when a middleware
    replaced it or the client left before it was sent, gives its slot back; one sent
    after its task ended (behind a sync-only middleware) keeps it."""
    monkeypatch.setattr(_claim, "GRACE", 0.0)
    given_back, loop = asyncio.Event(), asyncio.get_running_loop()
    delete = LocMemCache.delete

    def delete_and_tell(cache: LocMemCache, *args: Any, **kwargs: Any) -> bool:
        deleted = delete(cache, *args, **kwargs)
        loop.call_soon_threadsafe(given_back.set)
        return deleted

    monkeypatch.setattr(LocMemCache, "delete", delete_and_tell)
    with limits(STREAM_LIMIT_PER_ADDRESS=2):
        await held.start(await asyncio.create_task(call(GateView)))
        assert isinstance(await asyncio.create_task(call(GateView)), SSEResponse)
        await asyncio.wait_for(given_back.wait(), WAIT)
        assert (await held.call(GateView)).status_code == 200
        assert_refused(await held.call(GateView))


async def test_a_cache_that_fails_lets_streams_through(
    held: Held, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            # Nothing listens on port 1: every command fails to connect.
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    with (
        override_settings(CACHES=unreachable),
        limits(STREAM_LIMIT_PER_ADDRESS=1, STREAM_LIMIT_CACHE="down"),
        caplog.at_level(logging.ERROR, logger="django_sse"),
    ):
        for _ in range(3):
            assert (await held.open(AsyncClient())).status_code == 200
    assert "could not reach cache 'down'" in caplog.text


def test_renewing_keeps_the_slots_of_open_streams() -> None:
    cache = caches["default"]
    slot = _limits.Slots("default", "django_sse:stream-slot:test:0", "token")
    _limits._renewer.hold(slot)
    try:
        cache.delete(slot.key)  # as if its lease had run out
        _limits._renewer.renew()
        assert cache.get(slot.key) == "token"
    finally:
        _limits._renewer.drop(slot)
    cache.delete(slot.key)
    _limits._renewer.renew()
    assert cache.get(slot.key) is None


def test_a_stream_that_closes_during_a_renewal_leaves_its_slot_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The renewal writes what it read before the close: the close must still win."""
    cache = caches["default"]
    slot = _limits.Slots("default", "django_sse:stream-slot:test:0", "token")
    cache.set(slot.key, slot.token)
    _limits._renewer.hold(slot)
    writing, closed = threading.Event(), threading.Event()
    set_many = LocMemCache.set_many

    def set_many_after_the_close(self: LocMemCache, *args: Any, **kwargs: Any) -> Any:
        writing.set()
        assert closed.wait(WAIT)
        return set_many(self, *args, **kwargs)

    monkeypatch.setattr(LocMemCache, "set_many", set_many_after_the_close)
    renewal = threading.Thread(target=_limits._renewer.renew)
    renewal.start()
    try:
        assert writing.wait(WAIT)
        async_to_sync(slot.closed)(StreamStats())
        assert cache.get(slot.key) is None
    finally:
        closed.set()
        renewal.join(WAIT)
    assert not renewal.is_alive()
    assert cache.get(slot.key) is None


async def test_a_slot_that_went_to_another_stream_is_left_to_it() -> None:
    cache = caches["default"]
    slot = _limits.Slots("default", "django_sse:stream-slot:test:0", "mine")
    await cache.aset(slot.key, "theirs")
    await slot.closed(StreamStats())
    assert await cache.aget(slot.key) == "theirs"


@pytest.mark.parametrize("value", [-1, 1.5, "3", True])
async def test_a_limit_that_is_not_a_whole_number_is_an_error(value: object) -> None:
    with limits(STREAM_LIMIT_PER_USER=value), pytest.raises(Exception, match="whole number"):
        await AsyncClient(raise_request_exception=True).get("/gate/")
