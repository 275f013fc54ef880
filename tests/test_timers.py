"""The timer wheel: never early, one loop timer per tick, nothing left behind."""

from __future__ import annotations

import asyncio

from django_sse import _timers


class Alarm:
    def __init__(self) -> None:
        self.rung_at: list[float] = []
        self.rung = asyncio.get_running_loop().create_future()

    def ring(self) -> None:
        self.rung_at.append(asyncio.get_running_loop().time())
        if not self.rung.done():
            self.rung.set_result(None)


async def test_an_alarm_rings_once_and_never_before_its_time() -> None:
    loop = asyncio.get_running_loop()
    alarms = [Alarm() for _ in range(20)]
    whens = [loop.time() + 0.01 * i for i in range(20)]
    for alarm, when in zip(alarms, whens, strict=True):
        _timers.schedule(when, alarm)
    await asyncio.wait_for(asyncio.gather(*(alarm.rung for alarm in alarms)), timeout=10)
    for alarm, when in zip(alarms, whens, strict=True):
        assert len(alarm.rung_at) == 1
        assert alarm.rung_at[0] >= when
    assert loop not in _timers._wheels


async def test_alarms_in_one_tick_share_one_loop_timer() -> None:
    loop = asyncio.get_running_loop()
    tick = int(loop.time() / _timers.TICK) + 10
    alarms = [Alarm() for _ in range(100)]
    ticks = {_timers.schedule((tick - 0.5) * _timers.TICK, alarm) for alarm in alarms}
    assert ticks == {tick}
    assert len(_timers._wheels[loop]._ticks) == 1
    await asyncio.wait_for(asyncio.gather(*(alarm.rung for alarm in alarms)), timeout=10)
    assert all(len(alarm.rung_at) == 1 for alarm in alarms)


async def test_a_cancelled_alarm_does_not_ring_and_its_emptied_tick_is_dropped() -> None:
    loop = asyncio.get_running_loop()
    cancelled, kept = Alarm(), Alarm()
    when = loop.time() + 0.02
    tick = _timers.schedule(when, cancelled)
    _timers.cancel(loop, tick, cancelled)
    assert loop not in _timers._wheels
    _timers.schedule(when, cancelled)
    _timers.cancel(loop, _timers.schedule(when, kept), cancelled)
    await asyncio.wait_for(kept.rung, timeout=10)
    assert cancelled.rung_at == []
    assert loop not in _timers._wheels


async def test_cancelling_what_already_rang_is_harmless() -> None:
    loop = asyncio.get_running_loop()
    alarm, other = Alarm(), Alarm()
    tick = _timers.schedule(loop.time(), alarm)
    await asyncio.wait_for(alarm.rung, timeout=10)
    _timers.schedule(loop.time() + 0.02, other)
    _timers.cancel(loop, tick, alarm)
    await asyncio.wait_for(other.rung, timeout=10)
    assert len(alarm.rung_at) == 1


async def test_a_time_past_the_horizon_is_filed_at_it() -> None:
    """A keep_alive or max_duration of 1e308 overflowed the tick number."""
    loop = asyncio.get_running_loop()
    alarm = Alarm()
    tick = _timers.schedule(1e308, alarm)
    assert tick * _timers.TICK <= loop.time() + _timers.HORIZON + _timers.TICK
    _timers.cancel(loop, tick, alarm)
    assert loop not in _timers._wheels
