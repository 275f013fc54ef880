"""ChannelView: stream the events published to channels chosen per request; revoke()."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from asgiref.sync import async_to_sync
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase

from django_sse import _metrics, conf
from django_sse._background import in_background
from django_sse._lifecycle import Lifecycle
from django_sse.broadcast import _history
from django_sse.broadcast._channels import (
    ANSWER_PREFIX,
    group_name,
    parse_id,
    validate_channel,
    validate_channels,
)
from django_sse.broadcast._grip import MAX_CHANNELS as MAX_GRIP_CHANNELS
from django_sse.broadcast._grip import close_item
from django_sse.broadcast._held import held_response, through_pushpin
from django_sse.broadcast._hub import REVOKE_MESSAGE
from django_sse.broadcast._layer import get_layer
from django_sse.broadcast._pushpin import PushpinSettings, publish_items, settings
from django_sse.broadcast._subscription import Subscription
from django_sse.protocol import Event, opening
from django_sse.response import SSEResponse
from django_sse.stats import Outcome, StreamStats
from django_sse.tracking import tracker_for, view_name
from django_sse.views import SSEView, last_event_id, load_user

__all__ = ["ChannelView", "arevoke", "revoke"]


class ChannelView(SSEView):
    """Stream what ``publish()`` sends to this request's channels, resuming on reconnect.

    Name the channels in ``channels``, or per request in ``get_channels()``. Each one
    must pass ``has_channel_permission()`` before anything is streamed, or the request
    gets a 403; an invalid channel name gets a 400.
    """

    channels: Sequence[str] = ()
    # The channels this request subscribed to, once its access has been checked.
    subscribed: tuple[str, ...] = ()

    # The stream's Lifecycle rather than its response, which an idle subscriber then
    # does not keep (with its headers) once they are sent.
    _life: Lifecycle | None = None
    _user: str | None = None
    _since: dict[str, int] | None = None

    def get_channels(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Sequence[str] | Awaitable[Sequence[str]]:
        """The channels to subscribe to: the URL's arguments, query, user... (may be async)."""
        return self.channels

    async def has_channel_permission(self, request: HttpRequest, channel: str) -> bool:
        """Whether this request may follow ``channel``. Runs before streaming starts."""
        return True

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        subscription = Subscription(
            self.subscribed,
            self.last_event_id,
            user=self._user,
            on_end=self._end,
            since=self._since,
            offer=self._offer(),
        )
        self._since = None  # The subscription's now, and only until it starts.
        async with subscription:
            if not await self._still_allowed(request):
                self._end(Outcome.REVOKED)
                return
            async for event in subscription:
                yield event

    async def _still_allowed(self, request: HttpRequest) -> bool:
        """Access asked again once the stream has joined the hub, before it sends anything.

        A stream can pass its check just before access changes and join just after the
        revoke() that follows the change went out: that revoke misses it, but this
        check sees the change. Once joined, no later revoke() misses it. Skipped when
        the hook is the default, which allows everything.
        """
        if type(self).has_channel_permission is ChannelView.has_channel_permission:
            return True
        for channel in self.subscribed:
            if not await self.has_channel_permission(request, channel):
                return False
        return True

    async def _check_access(self, request: HttpRequest) -> HttpResponseBase | None:
        denied = await super()._check_access(request)
        if denied is not None:
            return denied
        # First: get_channels() may read request.user, even if it is sync.
        self._user = await user_key(request)
        names = self.get_channels(request, *self.args, **self.kwargs)
        if inspect.isawaitable(names):
            names = await names
        try:
            self.subscribed = validate_channels(names)
        except ValueError as error:
            return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
        for channel in self.subscribed:
            if not self._serves(channel) or not await self.has_channel_permission(request, channel):
                raise PermissionDenied(f"You may not subscribe to channel {channel!r}")
        return None

    def _serves(self, channel: str) -> bool:
        """Whether this view may serve ``channel`` at all: a resumable answer's channel
        only its own view serves, which checks that the request is its owner's."""
        return not channel.startswith(ANSWER_PREFIX)

    async def _respond(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        pushpin = through_pushpin(request) if self._holdable(request) else None
        if pushpin is not None:
            return await self._hand_to_pushpin(request, pushpin)
        response = await super()._respond(request, *args, **kwargs)
        if isinstance(response, SSEResponse):
            self._life = response._life
            if not self._resumes_every_channel():
                # The stream joins the hub once Django starts sending the response;
                # where each channel is now decides what counts as "after it opened".
                self._since = await _history.in_worker(_history.heads, self.subscribed)
        return response

    def _holdable(self, request: HttpRequest) -> bool:
        """Whether Pushpin can hold this view's streams: it sends events as they were
        published, so not a stream() that changes them, and holds them without end."""
        max_duration = conf.get("MAX_DURATION") if self.max_duration is None else self.max_duration
        return (
            isinstance(request, ASGIRequest)
            and type(self).stream is ChannelView.stream
            and not max_duration
        )

    async def _hand_to_pushpin(
        self, request: HttpRequest, pushpin: PushpinSettings
    ) -> HttpResponseBase:
        """Answer once with what the client missed; Pushpin holds the connection."""
        denied = await self._check_access(request)
        if denied is not None:
            return denied
        if len(self.subscribed) >= MAX_GRIP_CHANNELS:
            return HttpResponseBadRequest(
                f"A stream that Pushpin holds follows at most {MAX_GRIP_CHANNELS - 1} "
                f"channels, not {len(self.subscribed)}.",
                content_type="text/plain; charset=utf-8",
            )
        self.last_event_id = last_event_id(request)
        opening_line = opening(conf.get("RETRY") if self.retry is None else self.retry)
        keep_alive = float(conf.get("KEEP_ALIVE") if self.keep_alive is None else self.keep_alive)
        response, events = await held_response(
            pushpin,
            self.subscribed,
            self.last_event_id,
            user=self._user,
            keep_alive=keep_alive,
            opening=opening_line,
        )
        stats = StreamStats(
            ended_at=time.time(),
            events=len(events),
            bytes=len(opening_line) + sum(len(event.encode()) for event in events),
            last_event_id=next((e.id for e in reversed(events) if e.id), None),
            outcome=Outcome.HELD,
        )
        name = view_name(request, f"{type(self).__module__}.{type(self).__qualname__}")
        _metrics.count_finished(name, stats)
        tracker = tracker_for(request, self.log_streams, name)
        if tracker is not None:
            in_background(tracker.closed(stats))
        return response

    def _resumes_every_channel(self) -> bool:
        if not self.last_event_id:
            return False
        positions = parse_id(self.last_event_id, self.subscribed)
        return positions is not None and len(positions) == len(self.subscribed)

    def _offer(self) -> Callable[[Event], bool] | None:
        # A subclass's stream() may change the events on their way: then every
        # event must go through it.
        if self._life is None or type(self).stream is not ChannelView.stream:
            return None
        return self._life.offerer()

    def _end(self, outcome: Outcome) -> None:
        if self._life is not None:
            self._life.stop(outcome)


async def user_key(request: HttpRequest) -> str | None:
    """The request's user as revoke() names it: the primary key as a str; None if anonymous.

    Loads the user, so that the view's hooks can read ``request.user`` afterwards.
    """
    user = await load_user(request)
    return str(user.pk) if user is not None and user.is_authenticated else None


def revoke(user: Any, channel: str) -> None:
    """End ``user``'s open streams of ``channel``, in every process the layer reaches.

    ``user`` is a user or its primary key. The streams end with outcome ``revoked``;
    their clients reconnect, and ``has_channel_permission()`` decides again. So change
    what that hook checks first, then revoke.
    """
    async_to_sync(arevoke)(user, channel)


async def arevoke(user: Any, channel: str) -> None:
    """``revoke()`` for async code."""
    validate_channel(channel)
    pk = getattr(user, "pk", user)
    if pk is None:
        raise ValueError("revoke() needs a saved user or a primary key, not an anonymous user")
    message = {"type": REVOKE_MESSAGE, "channel": channel, "user": str(pk)}
    await get_layer().group_send(group_name(channel), message)
    pushpin = settings()
    if pushpin is not None:
        publish_items([close_item(pushpin.channel_prefix, str(pk), channel)], must_arrive=True)
