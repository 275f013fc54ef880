"""Database work in a worker thread: what crosses into it and what comes back."""

from __future__ import annotations

import contextvars
import threading

import pytest
from django.db import connection
from django.utils import translation

from django_sse._workers import in_worker

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


async def test_returns_the_result_from_another_thread() -> None:
    total, thread = await in_worker(lambda a, b: (a + b, threading.get_ident()), 2, 3)
    assert total == 5
    assert thread != threading.get_ident()


async def test_raises_what_the_function_raised() -> None:
    def fail() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await in_worker(fail)


@pytest.mark.django_db(transaction=True)
async def test_closes_the_threads_connection() -> None:
    def query() -> object:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return connection

    used = await in_worker(query)
    assert used.connection is None  # type: ignore[attr-defined]


async def test_sees_the_callers_context_and_active_language() -> None:
    marker.set("caller")
    with translation.override("de"):
        seen = await in_worker(lambda: (marker.get(), translation.get_language()))
    assert seen == ("caller", "de")


async def test_what_the_thread_sets_stays_there() -> None:
    """asgiref's sync_to_async alone would set both back into this context."""
    marker.set("caller")
    language = translation.get_language()

    def change() -> None:
        marker.set("worker")
        translation.activate("fr")

    await in_worker(change)
    assert marker.get() == "caller"
    assert translation.get_language() == language


async def test_leaves_the_callers_locals_as_they_were() -> None:
    """No new storage object per Local in the awaiting context: a stream keeps its
    context for its whole life."""
    translation.activate("de")
    try:
        before = contextvars.copy_context()
        await in_worker(lambda: None)
        after = contextvars.copy_context()
        assert {var: after[var] for var in after} == {var: before[var] for var in before}
        assert all(after[var] is before[var] for var in before)
    finally:
        translation.deactivate()
