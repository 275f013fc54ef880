"""StreamLog writes off the event loop: failures logged once, never raised into a stream;
and the inserts of streams that open together made in one worker call.

Why the inserts wait for each other: one worker call per opening stream opened a
database connection each, and (bench/README.md, "Stream logs") left several KiB of
memory per idle stream behind that no Python object held. Rows that arrive while an
insert is under way are inserted together as soon as it is done, so a quiet server
inserts each row at once and a burst of streams opening takes a few calls, not one
each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connections, router

from django_sse._background import in_background
from django_sse._workers import in_worker

if TYPE_CHECKING:
    from django_sse.models import StreamLog

__all__ = ["finish", "insert"]

logger = logging.getLogger("django_sse")

_R = TypeVar("_R")
# Rows in one worker call, at most: a burst of thousands of streams still gets its
# first rows in quickly.
_BATCH_ROWS = 500

# Seconds before each new try of a stream's final write that the database refused for a
# reason that passes (locked past its own timeout, restarting, a connection lost): the
# row would otherwise stay open, counted among the open streams for as long as its
# process lives, out of reach of sse_close_stale_logs' default mode.
RETRY_DELAYS: tuple[float, ...] = (1.0, 4.0, 15.0, 60.0)

# A row to insert, built in the worker, and its key once it is in.
_Waiting = tuple[Callable[[], "StreamLog"], "asyncio.Future[int | None]"]


async def finish(function: Callable[..., object], *args: Any) -> None:
    """``function(*args)`` in a worker thread, once; tried again in the background,
    RETRY_DELAYS apart, while the database refuses it for a reason that passes.

    Returns after the first try: a stream's close does not wait for the database to
    come back.
    """
    if await in_worker(_refused_for_now, function, *args):
        in_background(_retry(function, args))


async def _retry(function: Callable[..., object], args: tuple[Any, ...]) -> None:
    for delay in RETRY_DELAYS:
        await asyncio.sleep(delay)
        if not await in_worker(_refused_for_now, function, *args):
            return
    logger.error("Gave up writing a StreamLog row after %d tries", len(RETRY_DELAYS) + 1)


def _refused_for_now(function: Callable[..., object], *args: Any) -> bool:
    """Call ``function(*args)``; whether it failed in a way that may pass. In a worker."""
    try:
        function(*args)
    except (OperationalError, InterfaceError) as exc:
        # A missing table is an OperationalError too (SQLite's "no such table").
        if _table_missing(exc):
            _warn_table_missing()
            return False
        logger.exception("Could not write a StreamLog row; trying again")
        return True
    except Exception as exc:
        _reported(exc)
    return False


def insert(row: Callable[[], StreamLog]) -> asyncio.Future[int | None]:
    """The key of the row ``row()`` builds, once inserted; None if that failed.

    ``row`` is called in a worker thread, where it may query (the request's user).
    """
    loop = asyncio.get_running_loop()
    inserts = _inserts.get(loop)
    if inserts is None:
        inserts = _inserts[loop] = _Inserts()
    return inserts.add(row)


class _Inserts:
    """The rows waiting for their insert on one event loop, and the task inserting them."""

    def __init__(self) -> None:
        # No reference to the loop: it is the key of the weak mapping that holds this.
        self._waiting: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, row: Callable[[], StreamLog]) -> asyncio.Future[int | None]:
        loop = asyncio.get_running_loop()
        key = loop.create_future()
        self._waiting.append((row, key))
        if self._task is None:
            self._task = loop.create_task(self._run())
            self._task.add_done_callback(self._ended)
        return key

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = _Batch(self._waiting[:_BATCH_ROWS], loop)
                del self._waiting[:_BATCH_ROWS]
                try:
                    await in_worker(batch.insert)
                except BaseException:
                    batch.drop()
                    raise
        finally:
            # As the last row is in, so that a row added from now on starts a new task.
            self._task = None
            self._give_up()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task is self._task:
            # Cancelled before it began (its loop closing): _run() never ran.
            self._task = None
            self._give_up()

    def _give_up(self) -> None:
        """Leave the rows still waiting (only when cancelled) to be inserted whole at
        their stream's close."""
        _settle(self._waiting, None)
        self._waiting.clear()


class _Batch:
    """Rows inserted in one worker call, and who gives each stream its row's key.

    The worker does, once it has begun, even if the task awaiting it is cancelled
    meanwhile (its loop closing): the rows may be in by then, and a stream given None
    would insert its row again at its close. Only a worker call that never began leaves
    the keys to the loop (``drop()``), as None.
    """

    __slots__ = ("_begun", "_dropped", "_lock", "_loop", "_waiting")

    def __init__(self, waiting: list[_Waiting], loop: asyncio.AbstractEventLoop) -> None:
        self._waiting = waiting
        self._loop = loop
        self._lock = threading.Lock()
        self._begun = self._dropped = False

    def insert(self) -> None:
        """In the worker thread."""
        with self._lock:
            if self._dropped:
                return
            self._begun = True
        keys = _guarded(_insert_rows, [row for row, _ in self._waiting])
        with contextlib.suppress(RuntimeError):  # The loop is closed: nobody waits.
            self._loop.call_soon_threadsafe(_settle, self._waiting, keys)

    def drop(self) -> None:
        """On the loop, when the worker call was not awaited to its end."""
        with self._lock:
            self._dropped = not self._begun
        if self._dropped:
            _settle(self._waiting, None)


def _settle(batch: list[_Waiting], keys: list[int | None] | None) -> None:
    for n, (_, key) in enumerate(batch):
        if not key.done():
            key.set_result(None if keys is None else keys[n])


_inserts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inserts] = (
    weakref.WeakKeyDictionary()
)


def _insert_rows(rows: list[Callable[[], StreamLog]]) -> list[int | None]:
    """Build each row and insert them all; a row that fails to build is left out.

    In one statement where the database returns the keys of a bulk insert, else one
    statement per row, over the same connection: then a row that fails leaves the others
    in, and only it is inserted again at its close.
    """
    from django_sse.models import StreamLog

    built = [_guarded(row) for row in rows]
    if connections[router.db_for_write(StreamLog)].features.can_return_rows_from_bulk_insert:
        StreamLog.objects.bulk_create([log for log in built if log is not None])
    else:
        built = [None if log is None else _guarded(_saved, log) for log in built]
    return [None if log is None else log.pk for log in built]


def _saved(log: StreamLog) -> StreamLog:
    log.save(force_insert=True)
    return log


def _guarded(function: Callable[..., _R], *args: Any) -> _R | None:
    try:
        return function(*args)
    except Exception as exc:
        _reported(exc)
        return None


def _reported(exc: Exception) -> None:
    """Log a failed write; called from within the ``except`` that caught ``exc``."""
    if _table_missing(exc):
        _warn_table_missing()
    else:
        logger.exception("Could not write a StreamLog row")


_warned_table_missing = False


def _table_missing(exc: Exception) -> bool:
    from django_sse.models import StreamLog

    if not isinstance(exc, DatabaseError):
        return False
    connection = connections[router.db_for_write(StreamLog)]
    try:
        return StreamLog._meta.db_table not in connection.introspection.table_names()
    except DatabaseError:
        return False


def _warn_table_missing() -> None:
    """Say it once, not with a traceback per stream: every stream would fail the same."""
    global _warned_table_missing
    if _warned_table_missing:
        return
    _warned_table_missing = True
    logger.warning(
        "Stream logs are on but their table does not exist: run `python manage.py "
        "migrate`, or set DJANGO_SSE = {'LOG_STREAMS': False}. Streams are not logged "
        "until then."
    )
