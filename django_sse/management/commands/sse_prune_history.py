"""Delete broadcast events outside the history window, in batches.

Publishing prunes its own channel a little at a time; this command catches up on
channels nobody publishes to any more, whose events would otherwise outlive the
BROADCAST_HISTORY_AGE window. Run it from cron, e.g. hourly.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sse.broadcast._history import PRUNE_BATCH, prune
from django_sse.broadcast.models import BroadcastEvent
from django_sse.management.commands._common import migrated


class Command(BaseCommand):
    help = (
        "Delete broadcast history beyond BROADCAST_HISTORY_SIZE events per channel "
        "or older than BROADCAST_HISTORY_AGE seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=PRUNE_BATCH,
            help=f"Delete at most this many events per DELETE ({PRUNE_BATCH}).",
        )

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more")
        with migrated(BroadcastEvent):
            deleted = prune(batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted} broadcast events.")
