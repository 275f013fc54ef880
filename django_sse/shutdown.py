"""End open streams when the process is asked to stop.

ASGI servers wait for open responses before exiting (uvicorn forever, unless told
otherwise), or cancel them without letting their cleanup finish (daphne), and an event
stream never finishes by itself. Chaining onto SIGINT and SIGTERM ends every open
stream with outcome ``shutdown`` first; the server's own handler runs once they have
all closed (or after ``GRACE`` seconds), so it stops as it would with ordinary requests.
A second signal is passed on at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from django_sse import conf

__all__ = ["end_all_streams", "is_shutting_down", "register", "unregister"]


class _Stoppable(Protocol):
    def shutdown(self) -> None: ...


GRACE = 5.0

_open: dict[asyncio.AbstractEventLoop, set[_Stoppable]] = {}
# Reentrant: the signal handler runs on the main thread between any two bytecodes, also
# while that thread holds the lock.
_lock = threading.RLock()
_installed = False
_shutting_down = False
# The server's own signal handling, waiting for the open streams to close.
_deferred: Callable[[], None] | None = None


def register(stream: _Stoppable) -> None:
    """Count ``stream`` as open until ``unregister()``.

    A stream that opens once the process is shutting down (a client reconnecting while
    earlier streams clean up) is stopped at once: it sends its opening line and ends
    with outcome ``shutdown``, and its client reconnects, to another process or later.
    """
    loop = asyncio.get_running_loop()
    with _lock:
        _open.setdefault(loop, set()).add(stream)
    if _shutting_down:
        stream.shutdown()
    if not _installed and conf.get("HANDLE_SIGNALS"):
        _install_signal_handlers()


def unregister(stream: _Stoppable) -> None:
    loop = asyncio.get_running_loop()
    with _lock:
        streams = _open.get(loop)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del _open[loop]
        drained = not _open
    if drained:
        _forward_deferred()


def is_shutting_down() -> bool:
    return _shutting_down


def end_all_streams() -> None:
    """End every open stream in this process with outcome ``shutdown``.

    Safe to call from any thread and from a signal handler: the streams are stopped
    from their own event loops.
    """
    global _shutting_down
    _shutting_down = True
    with _lock:
        loops = list(_open)
    for loop in loops:
        if not loop.is_closed():
            loop.call_soon_threadsafe(_stop_streams_of, loop)


def _stop_streams_of(loop: asyncio.AbstractEventLoop) -> None:
    with _lock:
        streams = list(_open.get(loop, ()))
    for stream in streams:
        stream.shutdown()


def _install_signal_handlers() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    # signal.signal() only works in the main thread; servers that run their loop
    # elsewhere (e.g. runserver's autoreloader) stop streams by cancelling them.
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if previous is None:  # installed from C: we cannot chain to it
            continue
        signal.signal(signum, _chained(signum, previous))


def _chained(signum: int, previous: Any) -> Callable[[int, FrameType | None], None]:
    def forward() -> None:
        if callable(previous):
            previous(signum, None)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def handler(received: int, frame: FrameType | None) -> None:
        global _deferred, _shutting_down
        with _lock:
            loops = [loop for loop in _open if not loop.is_closed()]
        if _shutting_down or not loops:
            # A stream that opens while the server stops must still end at once.
            _shutting_down = True
            forward()
            return
        _deferred = forward
        end_all_streams()
        for loop in loops:
            loop.call_soon_threadsafe(loop.call_later, GRACE, _forward_deferred)

    return handler


def _forward_deferred() -> None:
    global _deferred
    forward, _deferred = _deferred, None
    if forward is not None:
        forward()
