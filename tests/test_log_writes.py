"""The StreamLog inserts of streams that open together, made in as few worker calls as
the database allows, each stream still getting its own row's key."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_sse import _log_writes
from django_sse._log_writes import insert
from django_sse.models import StreamLog

pytestmark = pytest.mark.django_db(transaction=True)


def row(path: str) -> Callable[[], StreamLog]:
    return lambda: StreamLog(view_name="v", path=path, started_at=timezone.now())


def unstorable() -> StreamLog:
    """A row every database refuses: started_at is NOT NULL."""
    return StreamLog(view_name="v", path="/refused/")


def failing_to_build() -> StreamLog:
    raise RuntimeError("the request's user could not be loaded")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows in each worker call."""
    sizes: list[int] = []
    insert_rows = _log_writes._insert_rows

    def counted(rows: list[Any]) -> list[int | None]:
        sizes.append(len(rows))
        return insert_rows(rows)

    monkeypatch.setattr(_log_writes, "_insert_rows", counted)
    return sizes


@pytest.fixture(params=[True, False], ids=["bulk", "row_by_row"])
def bulk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways of inserting: one statement where the database returns a bulk insert's
    keys (PostgreSQL, SQLite 3.35+, MariaDB 10.5+), one per row where it does not."""
    features = type(connection.features)
    monkeypatch.setattr(features, "can_return_rows_from_bulk_insert", request.param)
    return bool(request.param)


async def paths_by_key() -> dict[int, str]:
    return {log.pk: log.path async for log in StreamLog.objects.all()}


async def test_rows_of_streams_opening_together_go_in_with_one_call(
    calls: list[int], bulk: bool
) -> None:
    paths = [f"/stream/{n}/" for n in range(20)]
    keys = await asyncio.gather(*(insert(row(path)) for path in paths))
    assert calls == [20]
    assert all(isinstance(key, int) for key in keys)
    assert await paths_by_key() == dict(zip(keys, paths, strict=True))


async def test_rows_arriving_during_an_insert_go_in_together_right_after_it(
    calls: list[int], held: tuple[threading.Event, threading.Event]
) -> None:
    # calls first: held then holds the counted inserts.
    entered, release = held
    first = insert(row("/first/"))
    await asyncio.to_thread(entered.wait, 10)
    later = [insert(row(f"/later/{n}/")) for n in range(5)]
    release.set()
    keys = await asyncio.gather(first, *later)
    assert calls == [1, 5]
    assert len(set(keys)) == 6
    assert sorted((await paths_by_key()).values()) == sorted(
        ["/first/", *(f"/later/{n}/" for n in range(5))]
    )


async def test_a_burst_is_inserted_in_bounded_batches(
    calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_log_writes, "_BATCH_ROWS", 3)
    keys = await asyncio.gather(*(insert(row(f"/{n}/")) for n in range(7)))
    assert calls == [3, 3, 1]
    assert len(set(keys)) == 7
    assert len(await paths_by_key()) == 7


async def test_a_row_that_fails_to_build_leaves_the_others_in(
    bulk: bool, caplog: pytest.LogCaptureFixture
) -> None:
    keys = await asyncio.gather(insert(row("/a/")), insert(failing_to_build), insert(row("/b/")))
    assert keys[1] is None
    assert await paths_by_key() == {keys[0]: "/a/", keys[2]: "/b/"}
    assert "Could not write a StreamLog row" in caplog.text


async def test_a_row_the_database_refuses_costs_the_others_their_insert_only_in_bulk(
    bulk: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """In bulk, one statement fails as a whole, and every stream's row is inserted at its
    close instead (test_tracking); row by row, only the refused row is."""
    keys = await asyncio.gather(insert(row("/a/")), insert(unstorable), insert(row("/b/")))
    assert keys[1] is None
    if bulk:
        assert list(keys) == [None, None, None]
        assert await paths_by_key() == {}
    else:
        assert await paths_by_key() == {keys[0]: "/a/", keys[2]: "/b/"}
    assert "Could not write a StreamLog row" in caplog.text


async def test_an_insert_asked_for_as_the_last_one_ends_gets_its_own(calls: list[int]) -> None:
    """A row added from the previous row's key callback, as the inserting task ends, is
    inserted by a new task, not left waiting."""
    keys: list[asyncio.Future[int | None]] = [insert(row("/0/"))]
    last_in = asyncio.Event()

    def chain(key: asyncio.Future[int | None]) -> None:
        if len(keys) < 4:
            keys.append(insert(row(f"/{len(keys)}/")))
            keys[-1].add_done_callback(chain)
        else:
            last_in.set()

    keys[0].add_done_callback(chain)
    await asyncio.wait_for(last_in.wait(), 10)
    assert calls == [1, 1, 1, 1]
    assert all(isinstance(key.result(), int) for key in keys)
    assert sorted((await paths_by_key()).values()) == ["/0/", "/1/", "/2/", "/3/"]


async def test_rows_whose_task_is_cancelled_before_it_runs_are_left_for_the_close() -> None:
    key = insert(row("/a/"))
    task = _log_writes._inserts[asyncio.get_running_loop()]._task
    assert task is not None
    task.cancel()
    assert await key is None
    # The next row gets a task of its own.
    assert isinstance(await insert(row("/b/")), int)
    assert list((await paths_by_key()).values()) == ["/b/"]


async def test_rows_whose_insert_has_begun_get_their_keys_though_its_task_is_cancelled(
    held: tuple[threading.Event, threading.Event], bulk: bool
) -> None:
    """As when the loop closes under them: the rows go in all the same, and a stream
    told None would insert its row again at its close."""
    entered, release = held
    keys = [insert(row(f"/{n}/")) for n in range(3)]
    task = _log_writes._inserts[asyncio.get_running_loop()]._task
    assert task is not None
    await asyncio.to_thread(entered.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(key.done() for key in keys)
    release.set()
    got = await asyncio.wait_for(asyncio.gather(*keys), 10)
    assert await paths_by_key() == dict(zip(got, ["/0/", "/1/", "/2/"], strict=True))


async def test_rows_whose_worker_call_never_began_are_left_for_the_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queued = asyncio.Event()

    async def never_begins(function: Callable[[], None]) -> None:
        queued.set()
        await asyncio.get_running_loop().create_future()

    monkeypatch.setattr(_log_writes, "in_worker", never_begins)
    key = insert(row("/a/"))
    task = _log_writes._inserts[asyncio.get_running_loop()]._task
    assert task is not None
    await queued.wait()
    task.cancel()
    assert await key is None
    assert await paths_by_key() == {}
