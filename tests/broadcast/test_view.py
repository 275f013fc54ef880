"""ChannelView in-process: channels per request, access, resume, revoke, slow clients."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import AsyncClient, AsyncRequestFactory, override_settings

import django_sse
from django_sse import Event
from django_sse.broadcast import ChannelView, apublish, arevoke, revoke
from django_sse.broadcast._hub import get_hub
from django_sse.protocol import KEEP_ALIVE, EventParser
from django_sse.response import SSEResponse
from tests.asgi import application, get_scope
from tests.broadcast import views
from tests.broadcast.support import Stream, data, respond
from tests.sse import READ_TIMEOUT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_poll() -> Iterator[None]:
    with override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None}):
        yield


@pytest.fixture
def refused() -> Iterator[set[tuple[str, str]]]:
    yield views.refused
    views.refused.clear()


async def logged_in(django_user_model: Any, username: str) -> AsyncClient:
    user = await django_user_model.objects.acreate(username=username)
    client = AsyncClient()
    await sync_to_async(client.force_login)(user)
    return client


FROM_START = {"Last-Event-ID": "0"}


async def test_a_channel_from_the_url() -> None:
    stream = await Stream.open("/broadcast/rooms/lobby/", headers=FROM_START)
    assert stream.status == 200
    await apublish("lobby", {"text": "hi"}, event="said")
    (event,) = await stream.next()
    assert (event.event, event.json(), event.id) == ("said", {"text": "hi"}, "1")
    await stream.close()
    assert stream.outcome == "client_disconnected"


async def test_a_new_stream_gets_what_is_published_while_its_response_starts() -> None:
    await apublish("lobby", "before")
    response = await respond("/broadcast/rooms/lobby/")
    # The response exists, but its engine, which joins the hub, has not started.
    await apublish("lobby", "while starting")
    stream = await Stream.start(response)
    await apublish("lobby", "after")
    events = await stream.next(2)
    assert [(e.data, e.id) for e in events] == [("while starting", "2"), ("after", "3")]
    await stream.close()


async def test_channels_the_last_event_id_leaves_out_start_when_the_stream_opened() -> None:
    await apublish("a", "a1")
    await apublish("b", "b1")
    response = await respond(
        "/broadcast/rooms/?channel=a&channel=b", headers={"Last-Event-ID": "a:0"}
    )
    await apublish("b", "b2")
    stream = await Stream.start(response)
    events = await stream.next(2)
    assert [(e.data, e.id) for e in events] == [("a1", "a:1,b:1"), ("b2", "a:1,b:2")]
    await stream.close()


async def test_channels_from_the_query_share_one_resumable_id() -> None:
    await apublish("a", "a1")
    stream = await Stream.open(
        "/broadcast/rooms/?channel=a&channel=b", headers={"Last-Event-ID": "a:0,b:0"}
    )
    await apublish("b", "b1")
    events = await stream.next(2)
    assert [(e.data, e.id) for e in events] == [("a1", "a:1,b:0"), ("b1", "a:1,b:1")]
    await stream.close()


async def test_channels_chosen_by_an_async_method() -> None:
    stream = await Stream.open("/broadcast/async-chosen/", headers=FROM_START)
    await apublish("async-chosen", "x")
    assert [e.data for e in await stream.next()] == ["x"]
    await stream.close()


async def test_the_channels_attribute() -> None:
    class News(ChannelView):
        channels = ["news"]

    request = AsyncRequestFactory().get("/", headers=FROM_START)
    stream = await Stream.start(await News.as_view()(request))  # type: ignore[misc]
    await apublish("news", "x")
    assert [(e.data, e.id) for e in await stream.next()] == [("x", "1")]
    await stream.close()


async def test_a_subclass_stream_sees_every_event() -> None:
    class Shouting(ChannelView):
        channels = ["news"]

        async def stream(self, request, *args, **kwargs):
            async for event in super().stream(request, *args, **kwargs):
                yield Event(data=event.data.upper(), id=event.id)

    request = AsyncRequestFactory().get("/")
    stream = await Stream.start(await Shouting.as_view()(request))  # type: ignore[misc]
    await apublish("news", "first")
    assert [(e.data, e.id) for e in await stream.next()] == [("FIRST", "1")]
    # Now live, and waiting for the next event.
    await apublish("news", "second")
    assert [(e.data, e.id) for e in await stream.next()] == [("SECOND", "2")]
    await stream.close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/broadcast/rooms/?channel=a%20b", "may only contain"),
        ("/broadcast/rooms/", "at least one channel"),
        (f"/broadcast/rooms/?{'&'.join(f'channel={n:080}' for n in range(12))}", "Too many"),
    ],
)
async def test_bad_channels_are_a_400(path: str, message: str) -> None:
    response = await AsyncClient().get(path)
    assert response.status_code == 400
    assert message in response.content.decode()


async def test_a_refused_channel_is_a_403_before_streaming() -> None:
    response = await AsyncClient().get("/broadcast/rooms/?channel=public&channel=private.ada")
    assert response.status_code == 403
    assert not response.streaming


@pytest.mark.parametrize(
    "path",
    [
        "/broadcast/rooms/llm.AAAAAAAAAAAAAAAAAAAAAA/",
        "/broadcast/rooms/?channel=public&channel=llm.AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
async def test_a_resumable_answers_channel_is_a_403_even_where_every_channel_is_allowed(
    path: str,
) -> None:
    """Only the answer's own view serves it, to its owner (tests/llm)."""
    response = await AsyncClient().get(path, headers=FROM_START)
    assert response.status_code == 403
    assert not response.streaming


async def test_a_permitted_private_channel(django_user_model: Any) -> None:
    client = await logged_in(django_user_model, "ada")
    stream = await Stream.open("/broadcast/rooms/private.ada/", client, headers=FROM_START)
    await apublish("private.ada", "for ada")
    assert [e.data for e in await stream.next()] == ["for ada"]
    await stream.close()


async def test_resume_with_last_event_id_and_reset_on_a_bad_one() -> None:
    for n in range(1, 4):
        await apublish("lobby", f"m{n}")
    resumed = await Stream.open("/broadcast/rooms/lobby/", headers={"Last-Event-ID": "1"})
    assert [(e.data, e.id) for e in await resumed.next(2)] == [("m2", "2"), ("m3", "3")]
    await resumed.close()
    garbled = await Stream.open("/broadcast/rooms/lobby/?lastEventId=a:b")
    assert garbled.status == 200
    assert data(await garbled.next()) == [{"channel": "lobby", "reason": "invalid", "first_seq": 4}]
    await garbled.close()


async def test_revoke_ends_that_users_streams_of_that_channel(
    django_user_model: Any, refused: set[tuple[str, str]]
) -> None:
    ada = await logged_in(django_user_model, "ada")
    bob = await logged_in(django_user_model, "bob")
    ada_news = await Stream.open("/broadcast/rooms/private.news/", ada, headers=FROM_START)
    ada_lobby = await Stream.open("/broadcast/rooms/lobby/", ada, headers=FROM_START)
    bob_news = await Stream.open("/broadcast/rooms/private.news/", bob, headers=FROM_START)
    await apublish("private.news", "news 1")
    await apublish("lobby", "lobby 1")
    for stream in [ada_news, ada_lobby, bob_news]:
        assert len(await stream.next()) == 1  # so each is subscribed

    refused.add(("ada", "private.news"))
    await arevoke(await django_user_model.objects.aget(username="ada"), "private.news")
    assert await ada_news.rest() == []
    assert ada_news.outcome == "revoked"

    await apublish("private.news", "news 2")
    await apublish("lobby", "lobby 2")
    assert [e.data for e in await bob_news.next()] == ["news 2"]
    assert [e.data for e in await ada_lobby.next()] == ["lobby 2"]
    # The reconnecting client asks again, and is refused.
    response = await ada.get("/broadcast/rooms/private.news/")
    assert response.status_code == 403
    await bob_news.close()
    await ada_lobby.close()


async def test_a_stream_revoked_between_its_check_and_joining_the_hub_ends(
    django_user_model: Any, refused: set[tuple[str, str]]
) -> None:
    """Its check passed before access changed; the revoke() after the change went out
    before it joined the hub, so the revoke itself cannot reach it."""
    ada = await logged_in(django_user_model, "ada")
    response = await respond("/broadcast/rooms/private.news/", ada, headers=FROM_START)
    refused.add(("ada", "private.news"))
    await arevoke(await django_user_model.objects.aget(username="ada"), "private.news")
    await apublish("private.news", "news 1")
    stream = await Stream.start(response)
    assert await asyncio.wait_for(stream.rest(), READ_TIMEOUT) == []
    assert stream.outcome == "revoked"


async def test_a_client_leaving_during_the_second_check_leaves_the_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checking_again, never = asyncio.Event(), asyncio.Event()
    calls = 0

    async def allowed(view: Any, request: Any, channel: str) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:  # once the stream has joined the hub
            checking_again.set()
            await never.wait()
        return True

    monkeypatch.setattr(views.RoomView, "has_channel_permission", allowed)
    channel = "lobby-left-while-checked"
    stream = await Stream.open(f"/broadcast/rooms/{channel}/", headers=FROM_START)
    await asyncio.wait_for(checking_again.wait(), READ_TIMEOUT)
    assert channel in get_hub()._feeds
    await stream.close()
    assert stream.outcome == "client_disconnected"
    assert channel not in get_hub()._feeds


async def test_revoke_from_sync_code_and_by_primary_key(django_user_model: Any) -> None:
    ada = await logged_in(django_user_model, "ada")
    stream = await Stream.open("/broadcast/rooms/private.news/", ada, headers=FROM_START)
    await apublish("private.news", "news 1")
    assert len(await stream.next()) == 1
    user = await django_user_model.objects.aget(username="ada")
    await sync_to_async(revoke)(user.pk, "private.news")
    assert await stream.rest() == []
    assert stream.outcome == "revoked"


async def test_revoke_needs_a_user() -> None:
    with pytest.raises(ValueError, match="anonymous"):
        await arevoke(AnonymousUser(), "news")
    with pytest.raises(ValueError, match="may only contain"):
        await arevoke(1, "bad name")


@override_settings(DJANGO_SSE={"BROADCAST_POLL_INTERVAL": None, "BROADCAST_QUEUE_SIZE": 3})
async def test_a_stream_that_falls_behind_is_cut_off_and_others_continue() -> None:
    slow = await Stream.open("/broadcast/rooms/lobby/", headers=FROM_START)
    fast = await Stream.open("/broadcast/rooms/lobby/", headers=FROM_START)
    await apublish("lobby", "1")
    assert [e.id for e in await slow.next()] == ["1"]
    for n in range(1, 201):
        if n > 1:
            await apublish("lobby", str(n))
        assert [e.id for e in await fast.next()] == [str(n)]
    # The slow client stopped reading after the first event: what the server had
    # buffered for it still arrives, in order, then the stream ends. Its client
    # reconnects and resumes from the last id it saw.
    received = [int(e.id) for e in await slow.rest()]
    assert slow.outcome == "slow_consumer"
    assert received == list(range(2, len(received) + 2))
    assert len(received) < 199
    await fast.close()


def test_public_names() -> None:
    assert django_sse.ChannelView is ChannelView
    assert django_sse.publish.__module__ == "django_sse.broadcast._publish"
    assert django_sse.apublish is apublish


async def test_the_hub_writes_events_to_idle_streams_itself() -> None:
    """Served through django_sse.asgi, a live event reaches an idle stream's client
    from the hub's own task, not by waking the stream's."""
    from tests.asgi import application, get_scope

    bodies: asyncio.Queue[bytes] = asyncio.Queue()
    writers: list[asyncio.Task[Any] | None] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    left = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        writers.append(asyncio.current_task())
        if message["type"] == "http.response.body" and message.get("body"):
            await bodies.put(message["body"])

    scope = get_scope("/broadcast/rooms/lobby/")
    serving = asyncio.ensure_future(application(scope, receive, send))
    assert await asyncio.wait_for(bodies.get(), READ_TIMEOUT) == b":\n"
    handler = writers[0]  # the task that sent the response's start
    for text in ("one", "two"):
        await apublish("lobby", text)
        body = await asyncio.wait_for(bodies.get(), READ_TIMEOUT)
        assert EventParser().feed(body)[0].data == text
    # "one" may have come from history, through the stream's task; "two" came live
    # to a stream waiting for it.
    assert writers[-1] is not handler
    left.set()
    await asyncio.wait_for(serving, READ_TIMEOUT)


async def test_a_sync_get_channels_may_read_request_user(django_user_model: Any) -> None:
    """docs/broadcast.md's RoomView: request.user is loaded before get_channels() runs,
    which would otherwise raise SynchronousOnlyOperation (the session is read lazily)."""
    client = await logged_in(django_user_model, "ada")
    user = await django_user_model.objects.aget(username="ada")
    stream = await Stream.open("/broadcast/user-rooms/lobby/", client=client)
    try:
        assert stream.status == 200
        await apublish(f"user.{user.pk}", "for ada")
        (event,) = await stream.next()
        assert event.data == "for ada"
    finally:
        await stream.close()


def responses_alive() -> int:
    gc.collect()
    return sum(isinstance(thing, SSEResponse) for thing in gc.get_objects())


async def test_an_idle_subscriber_keeps_no_response_once_its_headers_are_out() -> None:
    """Taken over from Django's handler (django_sse.asgi), a subscription keeps its
    stream's Lifecycle, not the response with its headers (docs/architecture.md)."""
    before = responses_alive()
    app = ApplicationCommunicator(application, get_scope("/broadcast/rooms/lobby/"))
    await app.send_input({"type": "http.request", "body": b""})
    assert (await app.receive_output(READ_TIMEOUT))["status"] == 200
    assert (await app.receive_output(READ_TIMEOUT))["body"] == KEEP_ALIVE
    await apublish("lobby", "offered")
    assert (await app.receive_output(READ_TIMEOUT))["body"] == b"data: offered\nid: 1\n\n"
    assert responses_alive() == before
    await app.send_input({"type": "http.disconnect"})
    assert (await app.receive_output(READ_TIMEOUT)) == {"type": "http.response.body"}
    await app.wait(READ_TIMEOUT)
