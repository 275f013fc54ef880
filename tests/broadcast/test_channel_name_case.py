"""Channel names are case-sensitive on every database.

"Room" and "room" are two channels (two channel-layer groups), so they keep two
counters and two histories. MariaDB/MySQL compare text case-insensitively under their
default collations; there the two shared one counter and each replayed the other's
events, until migration 0007_mysql_compat gave the name columns a binary collation.
"""

from __future__ import annotations

import pytest

from django_sse.broadcast import _history, publish
from django_sse.broadcast.models import BroadcastChannel

pytestmark = pytest.mark.django_db(transaction=True)


def test_channels_differing_in_case_keep_their_own_numbers_and_history() -> None:
    assert [publish(c, c) for c in ["room", "Room", "ROOM", "Room"]] == [1, 1, 1, 2]
    assert _history.heads(["room", "Room", "ROOM", "rOOm"]) == {
        "room": 1,
        "Room": 2,
        "ROOM": 1,
        "rOOm": 0,
    }
    replayed = _history.read({"Room": 0, "rOOm": 0})
    assert [(e.channel, e.seq, e.data) for e in replayed] == [
        ("Room", 1, "Room"),
        ("Room", 2, "Room"),
    ]
    assert _history.last("room") == _history.StoredEvent("room", 1, "", "room")
    assert sorted(BroadcastChannel.objects.values_list("name", flat=True)) == [
        "ROOM",
        "Room",
        "room",
    ]
