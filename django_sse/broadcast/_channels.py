"""Channel names, and the event ids that say where a stream is in each of its channels.

A stream of one channel uses the channel's sequence number as its event id ("12"). A
stream of several channels needs a position in each to resume all of them from one
Last-Event-ID, so its ids are vectors: "chat:12,news:5". ``:`` and ``,`` cannot occur
in a channel name, so a vector always parses back unambiguously.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from django_sse.protocol import MAX_LAST_EVENT_ID

__all__ = [
    "ANSWER_PREFIX",
    "MAX_NAME_LENGTH",
    "format_id",
    "group_name",
    "parse_id",
    "validate_channel",
    "validate_channels",
]

# Channels' group names allow fewer than 100 characters; ours add GROUP_PREFIX.
MAX_NAME_LENGTH = 80
GROUP_PREFIX = "django_sse."
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# The channels of resumable answers (django_sse.llm): "llm.<generation id>". Only an
# answer's owner may read it, so only its own view serves these channels and only the
# answer publishes to them: ChannelView refuses them, and publish() too.
ANSWER_PREFIX = "llm."
# Digits of the largest sequence number a database's bigint holds.
_SEQ_DIGITS = 19


def validate_channel(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"A channel name must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("A channel name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"Channel name {name[:20]!r}... is {len(name)} characters long; "
            f"at most {MAX_NAME_LENGTH} are allowed"
        )
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"Channel name {name!r} may only contain ASCII letters, digits, '-', '_' and '.'"
        )
    return name


def validate_channels(names: Iterable[str]) -> tuple[str, ...]:
    """The names, checked and without repeats, in order; at least one.

    Their combined length is limited so that a vector id of all of them, at the
    largest sequence numbers, still fits the Last-Event-ID a view accepts.
    """
    if isinstance(names, str):
        raise TypeError(f"Channels must be a list of names, not the str {names!r}")
    channels = tuple(dict.fromkeys(validate_channel(name) for name in names))
    if not channels:
        raise ValueError("A subscription needs at least one channel")
    longest_id = sum(len(name) + 1 + _SEQ_DIGITS + 1 for name in channels) - 1
    if len(channels) > 1 and longest_id > MAX_LAST_EVENT_ID:
        raise ValueError(
            f"Too many channels ({len(channels)}) for one stream: its event ids could "
            f"exceed the {MAX_LAST_EVENT_ID}-byte Last-Event-ID limit. Use fewer or "
            f"shorter channel names."
        )
    return channels


def group_name(channel: str) -> str:
    """The channel layer group a channel's events are sent to."""
    return GROUP_PREFIX + channel


def format_id(positions: Mapping[str, int]) -> str:
    """The event id for a stream at these positions (sequence number per channel)."""
    if len(positions) == 1:
        (seq,) = positions.values()
        return str(seq)
    return ",".join(f"{channel}:{seq}" for channel, seq in positions.items())


def parse_id(value: str, channels: tuple[str, ...]) -> dict[str, int] | None:
    """Positions in ``channels`` that a Last-Event-ID names; None if it is malformed.

    Channels the id does not name are left out (the stream did not follow them);
    channels it names beyond ``channels`` are ignored.
    """
    if _is_seq(value):
        return {channels[0]: int(value)} if len(channels) == 1 else None
    positions: dict[str, int] = {}
    for pair in value.split(","):
        channel, colon, seq = pair.partition(":")
        if not colon or not _NAME.fullmatch(channel) or not _is_seq(seq):
            return None
        if channel in channels:
            positions[channel] = int(seq)
    return positions


def _is_seq(text: str) -> bool:
    return 0 < len(text) <= _SEQ_DIGITS and text.isascii() and text.isdigit()
