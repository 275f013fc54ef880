"""One timer wheel per event loop, for every stream's keep-alive and deadline.

Each idle stream needs waking when its next keep-alive or its maximum duration is
due. An event-loop timer per stream costs about 600 bytes (uvloop's handle and its
libuv timer), which with thousands of idle streams is a large share of their memory.
The wheel files each stream under the tick its time falls in (ticks of ``TICK``
seconds) and keeps one event-loop timer per tick that has a stream in it: a stream
costs a set entry, and thousands of streams whose times fall in the same tick share
one timer. A stream is woken at most ``TICK`` late, never early; but for a time past
``HORIZON``, which it is woken at, to look again.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

__all__ = ["HORIZON", "TICK", "Alarm", "cancel", "schedule"]

TICK = 0.05  # seconds
# A year: a time further away (a keep_alive of 1e308, say) is filed this far away, where
# its tick number is still exact; well short of where it would overflow.
HORIZON = 365 * 86400.0


class Alarm(Protocol):
    """What the wheel wakes: a stream's engine."""

    def ring(self) -> None: ...


class _Wheel:
    __slots__ = ("_loop", "_ticks")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ticks: dict[int, tuple[set[Alarm], asyncio.TimerHandle]] = {}

    def schedule(self, when: float, alarm: Alarm) -> int:
        tick = math.ceil(min(when, self._loop.time() + HORIZON) / TICK)
        entry = self._ticks.get(tick)
        if entry is None:
            handle = self._loop.call_at(tick * TICK, self._fire, tick)
            entry = self._ticks[tick] = (set(), handle)
        entry[0].add(alarm)
        return tick

    def cancel(self, tick: int, alarm: Alarm) -> None:
        entry = self._ticks.get(tick)
        if entry is None:
            return
        entry[0].discard(alarm)
        if not entry[0]:
            entry[1].cancel()
            self._drop(tick)

    def _fire(self, tick: int) -> None:
        alarms, _ = self._ticks[tick]
        self._drop(tick)
        for alarm in alarms:
            alarm.ring()

    def _drop(self, tick: int) -> None:
        del self._ticks[tick]
        if not self._ticks:
            # Nothing left to wake on this loop: let it (and this wheel) go.
            del _wheels[self._loop]


# Only loops with a stream waiting are here (see _drop), so a loop that has closed is
# not kept alive by this table.
_wheels: dict[asyncio.AbstractEventLoop, _Wheel] = {}


def schedule(when: float, alarm: Alarm) -> int:
    """Wake ``alarm`` once, at or up to TICK after the loop time ``when``; returns the
    tick to pass to :func:`cancel`."""
    loop = asyncio.get_running_loop()
    wheel = _wheels.get(loop)
    if wheel is None:
        wheel = _wheels[loop] = _Wheel(loop)
    return wheel.schedule(when, alarm)


def cancel(loop: asyncio.AbstractEventLoop, tick: int, alarm: Alarm) -> None:
    """Do not wake ``alarm`` at ``tick`` after all."""
    wheel = _wheels.get(loop)
    if wheel is not None:
        wheel.cancel(tick, alarm)
