"""ChannelView: stream the events published to channels chosen per request; revoke()."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from asgiref.sync import async_to_sync
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase

from django_sse.broadcast import _history
from django_sse.broadcast._channels import (
    group_name,
    parse_id,
    validate_channel,
    validate_channels,
)
from django_sse.broadcast._hub import REVOKE_MESSAGE
from django_sse.broadcast._layer import get_layer
from django_sse.broadcast._subscription import Subscription
from django_sse.protocol import Event
from django_sse.response import SSEResponse
from django_sse.stats import Outcome
from django_sse.views import SSEView, load_user

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

    _response: SSEResponse | None = None
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
        async with subscription:
            async for event in subscription:
                yield event

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
            if not await self.has_channel_permission(request, channel):
                raise PermissionDenied(f"You may not subscribe to channel {channel!r}")
        return None

    async def _respond(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = await super()._respond(request, *args, **kwargs)
        if isinstance(response, SSEResponse):
            self._response = response
            if not self._resumes_every_channel():
                # The stream joins the hub once Django starts sending the response;
                # where each channel is now decides what counts as "after it opened".
                self._since = await _history.in_worker(_history.heads, self.subscribed)
        return response

    def _resumes_every_channel(self) -> bool:
        if not self.last_event_id:
            return False
        positions = parse_id(self.last_event_id, self.subscribed)
        return positions is not None and len(positions) == len(self.subscribed)

    def _offer(self) -> Callable[[Event], bool] | None:
        # A subclass's stream() may change the events on their way: then every
        # event must go through it.
        if self._response is None or type(self).stream is not ChannelView.stream:
            return None
        return self._response.offer

    def _end(self, outcome: Outcome) -> None:
        if self._response is not None:
            self._response.stop(outcome)


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
