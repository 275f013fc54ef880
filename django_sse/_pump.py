"""The task that runs a stream's source, and knows whether anything cancelled it.

A ``CancelledError`` out of the source means the event loop is stopping only if
something cancelled this task; otherwise the source raised it itself (it awaited
something another task cancelled), which is the source failing. ``Task.cancelling()``
would tell, but not on Python 3.10.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["Pump"]


class Pump(asyncio.Task[None]):
    """A task that remembers being cancelled (``cancel_requested``)."""

    __slots__ = ("cancel_requested",)

    def __init__(self, coroutine: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop):
        self.cancel_requested = False
        super().__init__(coroutine, loop=loop)

    def cancel(self, msg: Any = None) -> bool:
        self.cancel_requested = True
        return super().cancel(msg)
