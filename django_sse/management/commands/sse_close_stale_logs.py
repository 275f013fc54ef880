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
from django.db.models import F, QuerySet
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
        stale = _stale(StreamLog.objects.filter(outcome=OPEN), all, cutoff)
        count = StreamLog.objects.filter(pk__in=stale, outcome=OPEN).update(
            outcome="shutdown", ended_at=now, duration=now - F("started_at"), error=RECOVERED
        )
        self.stdout.write(f"Marked {count} stale stream logs as shutdown.")
        running = _stale(Generation.objects.filter(ended_at=None), all, cutoff)
        ended = Generation.objects.filter(pk__in=running, ended_at=None).update(
            outcome=GenerationOutcome.ERROR.value, ended_at=now
        )
        self.stdout.write(f"Marked {ended} answers left running as error.")


def _stale(rows: QuerySet[Any], all: bool, cutoff: datetime | None) -> set[Any]:
    """The keys of ``rows`` that the options pick: every one, or those of dead processes
    on this host and, with a cutoff, those that started before it on any host."""
    if all:
        return set(rows.values_list("pk", flat=True))
    stale = set(_dead_on_this_host(rows))
    if cutoff is not None:
        stale.update(rows.filter(started_at__lt=cutoff).values_list("pk", flat=True))
    return stale


def _dead_on_this_host(rows: QuerySet[Any]) -> list[Any]:
    prefix = f"{socket.gethostname()}:"
    servers = rows.filter(server__startswith=prefix).values_list("server", flat=True)
    dead = []
    for server in set(servers):
        pid = server[len(prefix) :]
        if pid.isdigit() and int(pid) != os.getpid() and not _is_running(int(pid)):
            dead.append(server)
    return list(rows.filter(server__in=dead).values_list("pk", flat=True))
