from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from django_sse.broadcast import _hub


@pytest.fixture(autouse=True)
async def hub_left_idle() -> AsyncIterator[None]:
    """Every test closes its streams: nothing may stay subscribed in the hub."""
    yield
    hub = _hub._hubs.get(asyncio.get_running_loop())
    assert hub is None or hub.idle, "a test left subscriptions open"
