"""The GRIP wire format that Pushpin speaks: request signatures, hold instructions,
publish items.

Written here rather than taken from ``gripcontrol``: that package predates typing,
pulls in pubcontrol (a publisher thread of its own), PyJWT and six, and has no helpers
for the instructions a reliable stream needs (``Grip-Link``, ``Grip-Keep-Alive``,
``Grip-Set-Meta``). What Pushpin does with each instruction is pinned by
tests/test_pushpin_grip.py against the real Pushpin.

Every stream Pushpin holds for us subscribes each channel with the ``build-id``
filter, and the events we publish carry ``id: %I``: Pushpin writes each connection's
own id there (``id_format``), the sequence number on a stream of one channel, a
vector such as ``chat:12,news:5`` on a stream of several. With that filter the
content is a format string, so every ``%`` in it is written ``%%``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from django_sse.broadcast._history import StoredEvent
from django_sse.protocol import Event

__all__ = [
    "close_item",
    "escape",
    "hold_headers",
    "last_ids",
    "publish_item",
    "pushpin_channel",
    "signed_by_pushpin",
    "user_channel",
]

# Pushpin subscribes a connection to at most this many channels (its
# connection_subscription_max), the user's own included.
MAX_CHANNELS = 20


def signed_by_pushpin(grip_sig: str | None, key: bytes, issuer: str | None = None) -> bool:
    """Whether ``Grip-Sig`` is a JWT that Pushpin signed with ``key`` (HS256), unexpired,
    and, when ``issuer`` is given, whose ``iss`` claim is that (Pushpin's sig_iss).

    Pushpin removes a Grip-Sig that a client sends itself, so a valid one means the
    request came through Pushpin.
    """
    if not grip_sig:
        return False
    try:
        header, payload, signature = grip_sig.split(".")
        signed = f"{header}.{payload}".encode("ascii")
        given = _unbase64(signature)
    except (ValueError, binascii.Error):
        return False
    # The signature first: JSON that nobody signed is never parsed (it could be nested
    # deeply enough to exhaust the parser's recursion).
    if not hmac.compare_digest(hmac.new(key, signed, hashlib.sha256).digest(), given):
        return False
    try:
        alg = json.loads(_unbase64(header)).get("alg")
        claims = json.loads(_unbase64(payload))
    except (ValueError, AttributeError, binascii.Error, RecursionError):
        return False
    if not isinstance(claims, dict) or (issuer is not None and claims.get("iss") != issuer):
        return False
    expires = claims.get("exp")
    return alg == "HS256" and isinstance(expires, int | float) and expires > time.time()


def _unbase64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def pushpin_channel(prefix: str, channel: str) -> str:
    return prefix + channel


def user_channel(prefix: str, user: str) -> str:
    """The channel that lets revoke() reach one user's connections.

    Hashed: a primary key may hold characters that GRIP headers reserve. Named with a
    ``:``, which no broadcast channel's name may hold: an event published to a channel
    of the same name would otherwise reach every connection of the user.
    """
    return f"{prefix}user:{hashlib.sha256(user.encode()).hexdigest()[:32]}"


def last_ids(grip_last: str, prefix: str) -> dict[str, int]:
    """Our channels' positions in Pushpin's ``Grip-Last`` header (``ch; last-id=5``, one
    per channel, joined by commas). Channels of someone else's prefix, and ids that are
    not sequence numbers, are left out."""
    positions: dict[str, int] = {}
    for entry in grip_last.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        if not name.startswith(prefix):
            continue
        for param in params:
            key, _, last = param.partition("=")
            if key.strip() == "last-id" and last.strip().isdigit():
                positions[name[len(prefix) :]] = int(last.strip())
    return positions


def hold_headers(
    positions: Mapping[str, int],
    *,
    prefix: str,
    user: str | None,
    link: str,
    recover_interval: int,
    keep_alive: float,
    hold: bool,
) -> dict[str, str]:
    """The instructions for Pushpin: hold the stream (unless ``hold`` is False: more of
    the backlog follows at ``link``), on these channels from these positions, with this
    id format; fetch ``link`` when events were missed, and every ``recover_interval``."""
    names = {channel: pushpin_channel(prefix, channel) for channel in positions}
    subscriptions = [
        f"{names[channel]}; prev-id={seq}; filter=build-id" for channel, seq in positions.items()
    ]
    if user is not None:
        subscriptions.append(f"{user_channel(prefix, user)}; filter=require-sub")
    if len(positions) == 1:
        (name,) = names.values()
        id_format = f"%({name})s"
    else:
        # The vector ids of django_sse.broadcast._channels.format_id(), in Pushpin's words.
        id_format = ",".join(f"{channel}:%({name})s" for channel, name in names.items())
    headers = {
        "Grip-Channel": ", ".join(subscriptions),
        "Grip-Set-Meta": f'id_format="{id_format}"',
        "Grip-Link": f"<{link}>; rel=next; timeout={recover_interval}",
    }
    if hold:
        headers["Grip-Hold"] = "stream"
    if keep_alive > 0:
        headers["Grip-Keep-Alive"] = rf":\n; format=cstring; timeout={max(1, round(keep_alive))}"
    return headers


def escape(content: bytes) -> bytes:
    """Content for a connection with the build-id filter: a format string."""
    return content.replace(b"%", b"%%")


def publish_item(prefix: str, stored: StoredEvent) -> dict[str, Any]:
    """A published event as Pushpin publishes it: in order after ``prev-id``, with each
    connection's own id written in."""
    event = Event(data=stored.data, event=stored.event or None).encode()
    return {
        "channel": pushpin_channel(prefix, stored.channel),
        "id": str(stored.seq),
        "prev-id": str(stored.seq - 1),
        "formats": {"http-stream": {"content": "id: %I\n" + escape(event).decode()}},
    }


def close_item(prefix: str, user: str, channel: str) -> dict[str, Any]:
    """Close ``user``'s connections that follow ``channel``, and only those."""
    return {
        "channel": user_channel(prefix, user),
        "meta": {"require_sub": pushpin_channel(prefix, channel)},
        "formats": {"http-stream": {"action": "close"}},
    }
