"""Streams that Pushpin holds: the answer that hands a stream over, and recovery.

A request that came through Pushpin (a valid ``Grip-Sig``) is answered once, at once:
the events the client missed, and instructions to hold the connection on the stream's
channels from where those events end. Pushpin keeps the connection; Django keeps
nothing. Published events go to Pushpin (see _publish.py), which sends each to the
connections of its channel in sequence order.

When a connection misses one (a publish that failed, or one that came while the
connection was being set up), Pushpin sees the gap in the ids and fetches the stream's
recovery link, with the positions it has in ``Grip-Last``. The recovery view answers
with what history has after them, and the same instructions. Pushpin's recovery
requests carry none of the client's headers: no cookie, no session. So the link itself
says, signed, which channels the stream was allowed to follow and for whom; it is
renewed with each answer and expires after three recovery intervals unused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import reverse
from django.views import View

from django_sse.broadcast import _grip
from django_sse.broadcast._channels import format_id, validate_channels
from django_sse.broadcast._pushpin import PushpinSettings, settings
from django_sse.broadcast._subscription import Subscription
from django_sse.protocol import Event

__all__ = ["GripRecoveryView", "held_response", "through_pushpin"]

# Events per answer; a longer backlog is sent in pages that Pushpin fetches in turn.
PAGE_EVENTS = 500
_SALT = "django_sse.broadcast.pushpin"


def through_pushpin(request: HttpRequest) -> PushpinSettings | None:
    """The Pushpin settings, if Pushpin mode is on and the request came through Pushpin."""
    pushpin = settings()
    if pushpin is None or not _grip.signed_by_pushpin(
        request.headers.get("Grip-Sig"), pushpin.sig_key, pushpin.sig_iss
    ):
        return None
    return pushpin


async def held_response(
    pushpin: PushpinSettings,
    channels: Sequence[str],
    last_event_id: str | None,
    *,
    user: str | None,
    keep_alive: float,
    opening: bytes = b"",
) -> tuple[HttpResponseBase, list[Event]]:
    """The answer that hands a stream to Pushpin, and the events it replays.

    ``opening`` goes first on a stream's first answer: the same opening line (a
    comment, or ``retry``) a stream served directly starts with.
    """
    subscription = Subscription(channels, last_event_id, user=user)
    events, more = await subscription.backlog(PAGE_EVENTS)
    body = opening + b"".join(event.encode() for event in events)
    stream: dict[str, object] = {"c": list(subscription.channels), "u": user, "k": keep_alive}
    if more:
        # Pushpin fetches the next page of a stream it does not hold yet without
        # Grip-Last: the link itself says where the page ends.
        stream["p"] = subscription.positions
    state = signing.dumps(stream, salt=_SALT, compress=True)
    headers = _grip.hold_headers(
        subscription.positions,
        prefix=pushpin.channel_prefix,
        user=user,
        link=reverse("django_sse_broadcast:pushpin-recover", args=[state]),
        recover_interval=pushpin.recover_interval,
        keep_alive=keep_alive,
        hold=not more,
    )
    return _stream(_grip.escape(body), headers), events


def _stream(body: bytes, headers: dict[str, str]) -> HttpResponseBase:
    """A streaming response, so that nothing gives it a Content-Length: Pushpin sends a
    response that has one as complete, and closes the connection."""

    async def content() -> AsyncIterator[bytes]:
        yield body

    response = StreamingHttpResponse(content(), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-transform"
    # GZipMiddleware leaves alone a response that names its encoding.
    response["Content-Encoding"] = "identity"
    for name, value in headers.items():
        response[name] = value
    return response


class GripRecoveryView(View):
    """What Pushpin fetches for a held stream that missed events (see the module's
    docstring). Only Pushpin may ask; a link that is not ours, or has expired, ends the
    stream, and its client reconnects through every check a new stream passes."""

    http_method_names = ["get"]

    async def get(self, request: HttpRequest, state: str) -> HttpResponseBase:
        pushpin = through_pushpin(request)
        if pushpin is None:
            return HttpResponse("Only Pushpin may fetch this.", status=403)
        try:
            stream = signing.loads(state, salt=_SALT, max_age=3 * pushpin.recover_interval)
            channels = validate_channels(stream["c"])
            user, keep_alive = stream["u"], float(stream["k"])
            page_end = _page_end(stream.get("p"), channels)
        except (signing.BadSignature, KeyError, TypeError, ValueError):
            # A 4xx would make Pushpin retry for half a minute: end the stream instead.
            return _stream(b"", {})
        if page_end is not None:
            known = page_end
        else:
            positions = _grip.last_ids(request.headers.get("Grip-Last", ""), pushpin.channel_prefix)
            known = {channel: positions[channel] for channel in channels if channel in positions}
        last_event_id = format_id(known) if len(known) == len(channels) else None
        response, _ = await held_response(
            pushpin, channels, last_event_id, user=user, keep_alive=keep_alive
        )
        return response


def _page_end(positions: object, channels: tuple[str, ...]) -> dict[str, int] | None:
    """Where the page before ends, from a next page's link; None on a recovery link."""
    if positions is None:
        return None
    if not isinstance(positions, dict) or set(positions) != set(channels):
        raise ValueError("a page's positions name the stream's channels")
    return {channel: int(positions[channel]) for channel in channels}
