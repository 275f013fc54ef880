"""Mark StreamLog rows left ``open`` by a server process that died as ``shutdown``.

A process stopped normally closes its rows itself. One killed hard (SIGKILL, a crash,
a power cut) cannot, so its rows stay ``open``. Run this at deploy or server start;
by default it only touches rows of processes on this host that are no longer running.
"""

from __future__ import annotations

import math
import os
import socket
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import F
from django.utils import timezone

from django_sse.management.commands._common import ago, migrated
from django_sse.models import OPEN, StreamLog

RECOVERED = "Marked by sse_close_stale_logs: the server process was no longer running."


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Command(BaseCommand):
    help = "Mark open stream logs of server processes that are gone as 'shutdown'."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            help="Every open row, on any host: use when no server process is running.",
        )
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="HOURS",
            help="Also open rows on any host that started more than HOURS ago.",
        )

    def handle(self, *args: Any, all: bool, older_than: float | None, **options: Any) -> None:
        cutoff = None
        if older_than is not None:
            # float() takes "nan" and "inf" too.
            if not math.isfinite(older_than) or older_than < 0:
                raise CommandError("--older-than must be a number of hours, 0 or more")
            cutoff = ago("--older-than", hours=older_than)
        with migrated(StreamLog):
            self._close(all, cutoff)

    def _close(self, all: bool, cutoff: datetime | None) -> None:
        open_rows = StreamLog.objects.filter(outcome=OPEN)
        if all:
            stale = list(open_rows.values_list("pk", flat=True))
        else:
            stale = self._dead_on_this_host(open_rows)
            if cutoff is not None:
                stale += open_rows.filter(started_at__lt=cutoff).values_list("pk", flat=True)
        now = timezone.now()
        count = StreamLog.objects.filter(pk__in=set(stale), outcome=OPEN).update(
            outcome="shutdown", ended_at=now, duration=now - F("started_at"), error=RECOVERED
        )
        self.stdout.write(f"Marked {count} stale stream logs as shutdown.")

    def _dead_on_this_host(self, open_rows: Any) -> list[int]:
        prefix = f"{socket.gethostname()}:"
        servers = open_rows.filter(server__startswith=prefix).values_list("server", flat=True)
        dead = []
        for server in set(servers):
            pid = server[len(prefix) :]
            if pid.isdigit() and int(pid) != os.getpid() and not _is_running(int(pid)):
                dead.append(server)
        return list(open_rows.filter(server__in=dead).values_list("pk", flat=True))
