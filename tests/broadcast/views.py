"""ChannelViews the broadcast tests subscribe to, in-process and through real servers."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.http import HttpRequest, JsonResponse

from django_sse import Outcome
from django_sse.broadcast import ChannelView, _history, apublish, arevoke
from tests.views import _record_outcome

# (username, channel) pairs has_channel_permission() refuses; tests add to it.
refused: set[tuple[str, str]] = set()


class RoomView(ChannelView):
    """One channel from the URL, or several from ``?channel=``; ``private.*`` needs a login."""

    keep_alive = 0

    def get_channels(self, request: HttpRequest, *args: Any, **kwargs: Any) -> list[str]:
        if "channel" in kwargs:
            return [kwargs["channel"]]
        return request.GET.getlist("channel")

    async def has_channel_permission(self, request: HttpRequest, channel: str) -> bool:
        if channel.startswith("private."):
            username = await sync_to_async(_username)(request)
            return bool(username) and (username, channel) not in refused
        return True

    async def on_close(self, reason: Outcome) -> None:
        # For servers in other processes: the tests read the outcomes by probe token.
        token = self.request.GET.get("probe")
        if token:
            _record_outcome(token, str(reason))


def _username(request: HttpRequest) -> str:
    """The logged-in user's name, or "" (a thread: Django 4.2 has no request.auser())."""
    return request.user.get_username() if request.user.is_authenticated else ""


class KeptAliveRoomView(RoomView):
    keep_alive = 1


class AsyncChannelsView(RoomView):
    async def get_channels(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> list[str]:
        return ["async-chosen"]


class UserRoomView(ChannelView):
    """docs/broadcast.md's example: a sync get_channels() that reads request.user."""

    login_required = True
    keep_alive = 0

    def get_channels(self, request: HttpRequest, room: str) -> list[str]:
        return [f"room.{room}", f"user.{request.user.pk}"]

    async def has_channel_permission(self, request: HttpRequest, channel: str) -> bool:
        if channel.startswith("user."):
            return channel == f"user.{request.user.pk}"
        return True


async def publish_events(request: HttpRequest, channel: str) -> JsonResponse:
    """Publish ``count`` events from this server process; answers the last sequence number."""
    last = 0
    for n in range(int(request.GET.get("count", "1"))):
        last = await apublish(channel, str(n))
    return JsonResponse({"last": last})


# What @csrf_exempt sets; the decorator itself would hide, on Django 4.2, that the view
# is async.
publish_events.csrf_exempt = True  # type: ignore[attr-defined]


async def store_only(request: HttpRequest, channel: str) -> JsonResponse:
    """An event in history that neither the layer nor Pushpin gets: a publish they missed."""
    stored = await _history.in_worker(_history.append, channel, "", request.GET.get("data", "x"))
    return JsonResponse({"seq": stored.seq})


async def revoke_user(request: HttpRequest, channel: str) -> JsonResponse:
    """From now on refuse ``?user=`` the channel, and end that user's streams of it."""
    username = request.GET["user"]
    refused.add((username, channel))
    user = await User.objects.aget(username=username)
    await arevoke(user, channel)
    return JsonResponse({"revoked": username})
