"""Publishing fast enough for a soak: many events per request, one transaction each."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, JsonResponse

from django_sse.broadcast import _history, publish


def _publish_batch(channel: str, count: int, size: int) -> int:
    """``count`` events of about ``size`` bytes each, committed together.

    One commit per event costs ~2 ms on this project's CI machines (SQLite's fsync);
    one per batch makes a hundred thousand events a matter of seconds. Each event is
    still published by ``publish()``, which sends it through the layer on commit.
    """
    last = 0
    with transaction.atomic(using=_history.database()):
        for n in range(count):
            last = publish(channel, f"{n} ".ljust(size, "x"))
    return last


async def publish_batch(request: HttpRequest, channel: str) -> JsonResponse:
    """Publish ``count`` events of ``size`` bytes to ``channel``; the last sequence number."""
    count = int(request.GET.get("count", "1"))
    size = int(request.GET.get("size", "16"))
    return JsonResponse({"last": await sync_to_async(_publish_batch)(channel, count, size)})


# What @csrf_exempt sets; the decorator itself would hide, on Django 4.2, that the view
# is async.
publish_batch.csrf_exempt = True  # type: ignore[attr-defined]
