"""sse_prune_history with batches larger than a query may carry parameters."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_sse.broadcast.models import BroadcastChannel, BroadcastEvent

pytestmark = pytest.mark.django_db

# 2 ** 18 events: more than a query may carry parameters on SQLite (32,766; 250,000 as
# Debian builds it) and with psycopg 3's server-side binding (65,535).
MANY = 18


def fill(channel: str, doublings: int) -> None:
    """Gives ``channel`` 2 ** ``doublings`` events, seq 1 up, an hour old: each INSERT
    copies the rows there are under the next sequence numbers, by the hundred thousand
    in a second where publishing each would take minutes."""
    quote = connection.ops.quote_name
    table = quote(BroadcastEvent._meta.db_table)
    fields = {field.name: quote(str(field.column)) for field in BroadcastEvent._meta.fields}
    columns = ", ".join(fields[name] for name in ("channel", "seq", "event", "data", "created_at"))
    BroadcastEvent.objects.create(
        channel=channel, seq=1, event="", data="x", created_at=timezone.now() - timedelta(hours=1)
    )
    with connection.cursor() as cursor:
        for doubling in range(doublings):
            copies = columns.replace(fields["seq"], f"{fields['seq']} + %s", 1)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {copies} FROM {table} "
                f"WHERE {fields['channel']} = %s",
                [2**doubling, channel],
            )
    BroadcastChannel.objects.create(name=channel, last_seq=2**doublings)


@pytest.mark.parametrize(
    ("limits", "kept"),
    [
        ({"BROADCAST_HISTORY_SIZE": 1}, [("big", 2**MANY), ("other", 2)]),
        ({"BROADCAST_HISTORY_SIZE": None, "BROADCAST_HISTORY_AGE": 60}, []),
    ],
)
def test_a_batch_larger_than_a_query_may_carry(
    limits: dict[str, object], kept: list[tuple[str, int]]
) -> None:
    """--batch-size is the operator's choice: a batch must not become one parameter
    per event."""
    fill("big", MANY)
    fill("other", 1)
    out = StringIO()
    with override_settings(DJANGO_SSE=limits):
        call_command("sse_prune_history", "--batch-size", str(2**MANY), stdout=out)
    assert out.getvalue() == f"Deleted {2**MANY + 2 - len(kept)} broadcast events.\n"
    assert list(BroadcastEvent.objects.order_by("pk").values_list("channel", "seq")) == kept
