"""sse_prune_logs and sse_close_stale_logs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_sse.models import StreamLog

pytestmark = pytest.mark.django_db


def log(
    days_ago: float,
    outcome: str = "completed",
    server: str = "",
    ended_days_ago: float | None = None,
) -> StreamLog:
    now = timezone.now()
    ended = None if outcome == "open" else now - timedelta(days=ended_days_ago or days_ago)
    row: StreamLog = StreamLog.objects.create(
        view_name="v",
        path="/",
        started_at=now - timedelta(days=days_ago),
        ended_at=ended,
        outcome=outcome,
        server=server,
    )
    return row


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_prune_deletes_old_ended_rows_in_batches() -> None:
    old = [log(40) for _ in range(5)]
    # Recent, still open, and started long ago but ended recently: all kept.
    kept = [log(1), log(40, outcome="open"), log(40, ended_days_ago=2)]
    assert "Deleted 5 stream logs" in run("sse_prune_logs", "--days", "30", "--batch-size", "2")
    assert set(StreamLog.objects.values_list("pk", flat=True)) == {row.pk for row in kept}
    assert not StreamLog.objects.filter(pk__in=[row.pk for row in old]).exists()


def test_prune_dry_run_only_counts() -> None:
    log(40)
    log(40)
    assert "Would delete 2 stream logs" in run("sse_prune_logs", "--days", "30", "--dry-run")
    assert StreamLog.objects.count() == 2


@pytest.mark.parametrize("args", [["--days", "-1"], ["--days", "1", "--batch-size", "0"]])
def test_prune_rejects_bad_arguments(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("sse_prune_logs", *args)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_rows_of_dead_processes_on_this_host_become_shutdown() -> None:
    host = socket.gethostname()
    dead = log(0, outcome="open", server=f"{host}:{dead_pid()}")
    alive = log(0, outcome="open", server=f"{host}:{os.getppid()}")
    elsewhere = log(0, outcome="open", server="other-host:1")
    finished = log(0, outcome="completed", server=f"{host}:{dead_pid()}")
    assert "Marked 1 stale" in run("sse_close_stale_logs")
    for row in (dead, alive, elsewhere, finished):
        row.refresh_from_db()
    assert dead.outcome == "shutdown"
    assert dead.ended_at is not None
    assert dead.duration is not None
    assert "no longer running" in dead.error
    assert (alive.outcome, elsewhere.outcome, finished.outcome) == ("open", "open", "completed")


def test_older_than_reaches_other_hosts() -> None:
    old = log(2, outcome="open", server="other-host:1")
    young = log(0, outcome="open", server="other-host:1")
    run("sse_close_stale_logs", "--older-than", "24")
    old.refresh_from_db()
    young.refresh_from_db()
    assert (old.outcome, young.outcome) == ("shutdown", "open")


def test_all_marks_every_open_row() -> None:
    rows = [log(0, outcome="open", server="other-host:1"), log(0, outcome="open")]
    assert "Marked 2 stale" in run("sse_close_stale_logs", "--all")
    assert {row.outcome for row in StreamLog.objects.filter(pk__in=[r.pk for r in rows])} == {
        "shutdown"
    }
