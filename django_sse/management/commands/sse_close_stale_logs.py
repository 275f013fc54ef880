"""Mark StreamLog rows left ``open`` by a server process that died as ``shutdown``, and
its resumable answers left ``running`` as ``error``.

A process stopped normally closes its rows itself. One killed hard (SIGKILL, a crash,
a power cut) cannot, so its rows stay ``open``, and its answers count against their
users' limit of answers running at once until LLM_GENERATION_TIMEOUT. Run this at
deploy or server start; by default it only touches rows of processes on this host that
are no longer running.
"""

from __future__ import annotations

import math
import os
import socket
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import F, Q
from django.utils import timezone

from django_sse.llm.models import Generation, GenerationOutcome
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
    help = (
        "Mark open stream logs of server processes that are gone as 'shutdown', and "
        "their answers left running as 'error'."
    )

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
        now = timezone.now()
        picked = _picked(all, cutoff)
        # One UPDATE each, with the options as its condition rather than the rows' keys:
        # a host whose processes died with 20,000 streams each has more rows than a query
        # may carry parameters (32,766 on SQLite, 65,535 with psycopg 3's server-side
        # binding).
        count = StreamLog.objects.filter(picked, outcome=OPEN).update(
            outcome="shutdown", ended_at=now, duration=now - F("started_at"), error=RECOVERED
        )
        self.stdout.write(f"Marked {count} stale stream logs as shutdown.")
        ended = Generation.objects.filter(picked, ended_at=None).update(
            outcome=GenerationOutcome.ERROR.value, ended_at=now
        )
        self.stdout.write(f"Marked {ended} answers left running as error.")


def _picked(all: bool, cutoff: datetime | None) -> Q:
    """The rows, open or not, that the options pick: every one, or those of dead
    processes on this host and, with a cutoff, those that started before it on any
    host. StreamLog and Generation share the fields this reads."""
    if all:
        return Q()
    picked = Q(server__in=_dead_on_this_host())
    if cutoff is not None:
        picked |= Q(started_at__lt=cutoff)
    return picked


def _dead_on_this_host() -> set[str]:
    """The ``server`` (host:pid) of each process on this host that has open rows and is
    no longer running."""
    prefix = f"{socket.gethostname()}:"
    servers: set[str] = set()
    for rows in (StreamLog.objects.filter(outcome=OPEN), Generation.objects.filter(ended_at=None)):
        found = rows.filter(server__startswith=prefix).order_by().values_list("server", flat=True)
        servers.update(found.distinct())
    dead = set()
    for server in servers:
        pid = server[len(prefix) :]
        if pid.isdigit() and int(pid) != os.getpid() and not _is_running(int(pid)):
            dead.add(server)
    return dead
