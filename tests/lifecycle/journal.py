"""A per-process journal of what happened to each stream: JSON lines, one per mark.

The file named by ``SSE_TEST_JOURNAL`` gets a line per mark, written at once (the test
reads it, also after the server has exited); ``wait_for()`` lets a view await marks.
Marks are recorded from the event loop and from worker threads alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any, TextIO

_lock = threading.Lock()
_marks: dict[str, list[str]] = defaultdict(list)
_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
_file: TextIO | None = None
_seq = 0


def record(token: str, mark: str, outcome: str | None = None) -> None:
    """Note ``mark`` (with the stream's outcome, for on_close) for the stream ``token``."""
    global _file, _seq
    with _lock:
        _seq += 1
        _marks[token].append(mark)
        path = os.environ.get("SSE_TEST_JOURNAL")
        if path:
            if _file is None:
                _file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives with the process)
            line = {"seq": _seq, "t": token, "m": mark, "o": outcome}
            _file.write(json.dumps(line) + "\n")
            _file.flush()
        waiters = list(_waiters)
    for loop, changed in waiters:
        with contextlib.suppress(RuntimeError):  # its loop has closed
            loop.call_soon_threadsafe(changed.set)


def has(token: str, marks: list[str]) -> bool:
    with _lock:
        return any(mark in marks for mark in _marks.get(token, ()))


async def wait_for(tokens: list[str], marks: list[str], timeout: float) -> list[str]:
    """Wait until every token has one of ``marks``; the tokens still without one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    changed = asyncio.Event()
    waiter = (loop, changed)
    with _lock:
        _waiters.add(waiter)
    try:
        while True:
            changed.clear()
            missing = [token for token in tokens if not has(token, marks)]
            left = deadline - loop.time()
            if not missing or left <= 0:
                return missing
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
    finally:
        with _lock:
            _waiters.discard(waiter)


def read(path: Path) -> dict[str, list[dict[str, Any]]]:
    """A journal file's entries by token, in the order they were recorded (test side)."""
    entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                entries[entry["t"]].append(entry)
    for token_entries in entries.values():
        token_entries.sort(key=lambda entry: entry["seq"])
    return entries
