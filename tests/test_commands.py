"""sse_prune_logs and sse_close_stale_logs; every command on a database before migrate."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor
from django.db.models import QuerySet, Value
from django.db.models.functions import Concat
from django.db.utils import OperationalError, ProgrammingError
from django.utils import timezone

from django_sse.llm.models import Generation
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


def answer(hours_ago: float, server: str, ended: bool = False) -> Generation:
    now = timezone.now()
    row: Generation = Generation.objects.create(
        id=f"g{Generation.objects.count()}",
        server=server,
        started_at=now - timedelta(hours=hours_ago),
        ended_at=now if ended else None,
        outcome="completed" if ended else "running",
    )
    return row


def outcomes(*rows: Generation) -> list[tuple[str, bool]]:
    """Each row's outcome as the database has it now, and whether it has ended."""
    for row in rows:
        row.refresh_from_db()
    return [(row.outcome, row.ended_at is not None) for row in rows]


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


def multiply(row: models.Model, doublings: int) -> None:
    """Copies ``row`` until its table holds 2 ** ``doublings`` rows like it: by the
    hundred thousand in a second, where saving each would take minutes. A key that is
    not the database's own gets a letter more with each copy."""
    model, quote = type(row), connection.ops.quote_name
    auto = isinstance(model._meta.pk, models.AutoField)
    # The copied key last: Django 4.2 selects annotations after the fields whatever
    # order values_list() names them in, and the INSERT's columns must match.
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    if not auto:
        fields.append(model._meta.pk)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    with connection.cursor() as cursor:
        for letter in "abcdefghijklmnopqrstuvwxyz"[:doublings]:
            copies = (
                model._default_manager.annotate(copied_pk=Concat("pk", Value(letter)))
                .order_by()
                .values_list(*("copied_pk" if f.primary_key else f.attname for f in fields))
            )
            select, params = copies.query.sql_with_params()
            table = quote(model._meta.db_table)
            cursor.execute(f"INSERT INTO {table} ({columns}) {select}", params)


# 2 ** 18 rows: more than a query may carry parameters on SQLite (32,766; 250,000 as
# Debian builds it) and with psycopg 3's server-side binding (65,535).
MANY = 18


def test_prune_deletes_a_batch_larger_than_a_query_may_carry() -> None:
    """--batch-size is the operator's choice: a batch must not become one parameter
    per row."""
    multiply(log(40), MANY)
    kept = log(1)
    out = run("sse_prune_logs", "--days", "30", "--batch-size", str(2**MANY))
    assert f"Deleted {2**MANY} stream logs" in out
    assert list(StreamLog.objects.values_list("pk", flat=True)) == [kept.pk]


def test_prune_dry_run_only_counts() -> None:
    log(40)
    log(40)
    assert "Would delete 2 stream logs" in run("sse_prune_logs", "--days", "30", "--dry-run")
    assert StreamLog.objects.count() == 2


@pytest.mark.parametrize("args", [["--days", "-1"], ["--days", "1", "--batch-size", "0"]])
def test_prune_rejects_bad_arguments(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("sse_prune_logs", *args)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["sse_prune_logs", "--days", "1000000000"], "--days"),  # past timedelta's range
        (["sse_prune_logs", "--days", "999999999"], "--days"),  # past datetime's
        (["sse_close_stale_logs", "--older-than", "nan"], "--older-than"),
        (["sse_close_stale_logs", "--older-than", "inf"], "--older-than"),
        (["sse_close_stale_logs", "--older-than", "1e20"], "--older-than"),
        (["sse_close_stale_logs", "--all", "--older-than", "nan"], "--older-than"),
    ],
)
def test_an_option_past_what_dates_hold_is_named(args: list[str], option: str) -> None:
    with pytest.raises(CommandError, match=option):
        call_command(*args)


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


def test_closes_more_stale_rows_than_a_query_may_carry() -> None:
    """A host whose processes held 20,000 streams each and were killed at once."""
    dead = f"{socket.gethostname()}:{dead_pid()}"
    multiply(log(0, outcome="open", server=dead), MANY)
    multiply(answer(0, server=dead), MANY)
    out = run("sse_close_stale_logs")
    assert f"Marked {2**MANY} stale stream logs" in out
    assert f"Marked {2**MANY} answers left running" in out
    assert not StreamLog.objects.filter(outcome="open").exists()
    assert not Generation.objects.filter(ended_at=None).exists()


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


def test_answers_left_running_by_dead_processes_on_this_host_become_errors() -> None:
    """A running answer counts against its user's limit of answers at once: one whose
    process died would refuse them until it is LLM_GENERATION_TIMEOUT seconds old."""
    host = socket.gethostname()
    dead = answer(0, server=f"{host}:{dead_pid()}")
    alive = answer(0, server=f"{host}:{os.getppid()}")
    elsewhere = answer(0, server="other-host:1")
    finished = answer(0, server=f"{host}:{dead_pid()}", ended=True)
    assert "Marked 1 answers left running as error" in run("sse_close_stale_logs")
    assert outcomes(dead, alive, elsewhere, finished) == [
        ("error", True),
        ("running", False),
        ("running", False),
        ("completed", True),
    ]


def test_older_than_and_all_reach_answers_on_other_hosts() -> None:
    old, young = answer(30, server="other-host:1"), answer(0, server="other-host:1")
    run("sse_close_stale_logs", "--older-than", "24")
    assert outcomes(old, young) == [("error", True), ("running", False)]
    run("sse_close_stale_logs", "--all")
    assert outcomes(young) == [("error", True)]


@pytest.fixture
def unmigrated() -> Iterator[None]:
    """The database as it is before ``manage.py migrate`` first reaches django_sse."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("django_sse")
    executor.migrate([("django_sse", None)])
    try:
        yield
    finally:
        MigrationExecutor(connection).migrate(latest)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unmigrated")
@pytest.mark.parametrize(
    "args",
    [
        ["sse_prune_logs", "--days", "30"],
        ["sse_prune_logs", "--days", "30", "--dry-run"],
        ["sse_close_stale_logs"],
        ["sse_close_stale_logs", "--all"],
        ["sse_prune_history"],
        ["sse_publish", "news", "hello"],
    ],
)
def test_before_migrate_every_command_says_to_run_it(args: list[str]) -> None:
    with pytest.raises(CommandError, match=r"run `manage.py migrate` first"):
        call_command(*args)


def test_another_database_error_is_not_blamed_on_migrations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log(0, outcome="open")

    def locked(*args: Any, **kwargs: Any) -> int:
        raise OperationalError("database is locked")

    monkeypatch.setattr(QuerySet, "update", locked)
    with pytest.raises(OperationalError, match="database is locked"):
        call_command("sse_close_stale_logs", "--all")


@pytest.mark.parametrize(
    "args", [["sse_close_stale_logs", "--all"], ["sse_prune_logs", "--days", "0"]]
)
def test_a_database_error_inside_a_transaction_is_raised_as_it_came(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """Run inside a transaction (this test's own, as call_command() in atomic()): the
    failed query leaves it unusable, on PostgreSQL for any query. Telling the error
    apart from missing migrations must not query it again and raise that failure
    instead of the first."""
    monkeypatch.setattr(StreamLog._meta, "db_table", "django_sse_gone")
    with pytest.raises((OperationalError, ProgrammingError), match="django_sse_gone"):
        call_command(*args)
