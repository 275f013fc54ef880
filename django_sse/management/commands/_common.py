"""What the commands share: the answer to a database that django_sse's migrations have
not reached, and the dates their options reach back to.

Django lists every module here as a command except those whose name starts with "_".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.db import connections, models, router
from django.db.migrations.executor import MigrationExecutor
from django.db.utils import OperationalError, ProgrammingError
from django.utils import timezone


@contextmanager
def migrated(model: type[models.Model]) -> Iterator[None]:
    """Runs a command's queries. Where they fail because django_sse's migrations are not
    all applied to ``model``'s database (a table or a column is missing), a
    CommandError says what to run instead of the database's traceback."""
    # Told apart from any other failure (a lost connection, a lock) by the plan: only
    # unapplied migrations are worth a "run migrate". Planned before the command's
    # queries, not once one has failed: in an outer transaction (call_command() inside
    # atomic()) a failed query leaves the transaction unusable until it is rolled back,
    # so the plan's own queries would fail too, and their error would replace the first.
    executor = MigrationExecutor(connections[router.db_for_write(model)])
    unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes("django_sse"))
    try:
        yield
    except (OperationalError, ProgrammingError) as error:
        if not unapplied:
            raise
        raise CommandError(
            "django_sse's migrations are not applied to this database: "
            "run `manage.py migrate` first."
        ) from error


def ago(option: str, **period: float) -> datetime:
    """Now less ``period`` (timedelta's keywords), given as ``option``."""
    try:
        return timezone.now() - timedelta(**period)
    except OverflowError:
        raise CommandError(f"{option} reaches back before the year 1") from None
