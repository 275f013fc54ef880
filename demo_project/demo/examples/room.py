"""Example 5: a live room. Messages posted in one tab appear in every tab, in every
server process, and a feed channel takes what ``manage.py sse_publish feed ...`` sends.

Each page follows two channels on one stream: its room's and the shared "feed". The
browser's reconnects resume both from one Last-Event-ID, so a dropped connection
loses nothing that history still holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, register_converter, reverse
from django.urls.converters import SlugConverter
from django.utils.html import format_html
from django.views import View

from django_sse.broadcast import ChannelView, apublish

app_name = "room"

FEED = "feed"
MAX_NAME = 40
MAX_TEXT = 500
ROOM_PREFIX = "room."


class RoomConverter(SlugConverter):
    """A room's name in its URLs: a slug short enough that its channel's name stays within
    the 80 characters channel names have, so that the page, the stream and the post of a
    room whose name makes no channel are all a 404."""

    regex = f"[-a-zA-Z0-9_]{{1,{80 - len(ROOM_PREFIX)}}}"


register_converter(RoomConverter, "room")


def room_channel(room: str) -> str:
    # <room:room> in the URLs keeps this a valid channel name.
    return f"{ROOM_PREFIX}{room}"


class RoomStream(ChannelView):
    """The room's messages and the feed, replayed from history after a reconnect."""

    retry = 1000

    def get_channels(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Sequence[str]:
        return [room_channel(kwargs["room"]), FEED]


class MessageForm(forms.Form):
    """What a post may hold. Each field strips the spaces around its value and refuses a
    NUL character, which history could not store: publish() would raise (a 500)."""

    name = forms.CharField(max_length=MAX_NAME)
    text = forms.CharField(max_length=MAX_TEXT)


class PostMessage(View):
    """POST name and text: publish them to the room, to every tab in every process."""

    http_method_names = ["post"]

    async def post(self, request: HttpRequest, room: str) -> JsonResponse:
        form = MessageForm(request.POST)
        if not form.is_valid():
            errors = form.errors.items()
            problems = [f"{field}: {' '.join(map(str, messages))}" for field, messages in errors]
            return JsonResponse({"error": " ".join(problems)}, status=400)
        # The server renders (and escapes) the fragment; the page appends it as HTML.
        message = form.cleaned_data
        fragment = format_html("<li><b>{}</b>: {}</li>", message["name"], message["text"])
        event_id = await apublish(room_channel(room), str(fragment), event="chat")
        return JsonResponse({"id": event_id})


def page(request: HttpRequest, room: str = "lobby") -> HttpResponse:
    context = {
        "room": room,
        "stream_url": reverse("room:stream", args=[room]),
        "post_url": reverse("room:post", args=[room]),
        "feed": FEED,
    }
    return render(request, "demo/room.html", context)


urlpatterns = [
    path("", page, name="page"),
    path("<room:room>/", page, name="room"),
    path("<room:room>/stream/", RoomStream.as_view(), name="stream"),
    path("<room:room>/post/", PostMessage.as_view(), name="post"),
]
