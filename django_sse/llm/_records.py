"""The generations' rows: admitting a new answer within the limits, its owner, its end.

Limits are counted in the database, so they hold across every process that shares it.
Admitting writes first and counts after, in one transaction: on SQLite, whose writes
are serialized, the count is exact; on PostgreSQL and MariaDB two requests of the same
user arriving at the same instant may both be admitted (each does not see the other's
uncommitted row), so a limit can be exceeded by the number of simultaneous requests.
A row of a process that died stays ``running``; rows older than the generations'
timeout no longer count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.db import router, transaction

from django_sse import conf
from django_sse.llm.models import Generation, GenerationOutcome

__all__ = ["Admission", "Refused", "admit", "finish", "owner_of"]


@dataclass(frozen=True)
class Admission:
    """Who starts a generation, and how many they may have running at once."""

    user_id: str | None
    client_address: str | None
    # None: no limit. For a logged-in user, ``per_user``; otherwise ``per_address``.
    per_user: int | None
    per_address: int | None

    @property
    def limit(self) -> int | None:
        return self.per_user if self.user_id is not None else self.per_address


class Refused(Exception):
    """The starter already has ``limit`` answers running."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} answers running")
        self.limit = limit


class _OverLimit(Exception):
    pass


def admit(generation_id: str, admission: Admission, model: str, server: str) -> None:
    """Record a new running generation, or raise Refused if its starter has too many."""
    now = datetime.now(timezone.utc)
    using = router.db_for_write(Generation)
    limit = admission.limit
    try:
        with transaction.atomic(using=using):
            Generation.objects.using(using).create(
                id=generation_id,
                user_id=admission.user_id,
                client_address=admission.client_address,
                model=model[:200],
                server=server[:255],
                started_at=now,
            )
            if limit is not None and _running(admission, now, using) > limit:
                raise _OverLimit
    except _OverLimit:
        raise Refused(limit or 0) from None


def _running(admission: Admission, now: datetime, using: str) -> int:
    rows = Generation.objects.using(using).filter(
        ended_at=None, started_at__gt=now - timedelta(seconds=_timeout())
    )
    if admission.user_id is not None:
        rows = rows.filter(user_id=admission.user_id)
    else:
        rows = rows.filter(user=None, client_address=admission.client_address)
    return int(rows.count())


def _timeout() -> float:
    return float(conf.get("LLM_GENERATION_TIMEOUT"))


def owner_of(generation_id: str) -> tuple[bool, str | None]:
    """Whether the generation exists, and the primary key (a str) of who started it."""
    row = Generation.objects.filter(pk=generation_id).values_list("user_id", flat=True)
    found = list(row)
    if not found:
        return False, None
    return True, None if found[0] is None else str(found[0])


def finish(generation_id: str, outcome: GenerationOutcome, *, overrule: bool = False) -> None:
    """Record how the generation ended, unless it already is; with ``overrule``, over
    what was recorded (an ending recorded before it was published, which then failed)."""
    rows = Generation.objects.filter(pk=generation_id)
    if not overrule:
        rows = rows.filter(ended_at=None)
    rows.update(ended_at=datetime.now(timezone.utc), outcome=outcome.value)
