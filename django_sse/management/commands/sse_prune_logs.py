"""Delete old StreamLog rows in batches, so a large table is pruned without long locks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max

from django_sse.management.commands._common import ago, migrated
from django_sse.models import StreamLog


class Command(BaseCommand):
    help = "Delete stream logs that ended more than --days days ago."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            required=True,
            help="Delete rows that ended more than DAYS days ago; open rows are kept.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            help="Delete at most this many rows per DELETE (5000).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count the rows.")

    def handle(self, *args: Any, days: int, batch_size: int, dry_run: bool, **options: Any) -> None:
        if days < 0:
            raise CommandError("--days must be 0 or more")
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more")
        cutoff = ago("--days", days=days)
        with migrated(StreamLog):
            self._prune(cutoff, batch_size, dry_run)

    def _prune(self, cutoff: datetime, batch_size: int, dry_run: bool) -> None:
        # started_at first, so the index narrows the scan; open rows have no ended_at.
        old = StreamLog.objects.filter(started_at__lt=cutoff, ended_at__lt=cutoff)
        if dry_run:
            self.stdout.write(
                f"Would delete {old.count()} stream logs from before {cutoff:%Y-%m-%d %H:%M}."
            )
            return
        deleted = 0
        while True:
            # The DELETE is bounded by the batch's last key, not given a list of its
            # keys, whatever --batch-size is: a query carries at most 32,766 parameters
            # on SQLite (250,000 as Debian builds it), 65,535 with psycopg 3's
            # server-side binding. No row can join the batch meanwhile: a row that
            # ends now ends after the cutoff.
            last = old.order_by("pk").values_list("pk", flat=True)[batch_size - 1 : batch_size]
            end = last[0] if last else old.aggregate(end=Max("pk"))["end"]
            if end is None:
                break
            deleted += old.filter(pk__lte=end).delete()[0]
        self.stdout.write(f"Deleted {deleted} stream logs from before {cutoff:%Y-%m-%d %H:%M}.")
