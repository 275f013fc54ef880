from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from django_sse.llm import _generation
from tests.llm.support import close_providers
from tests.llm.upstream import Upstream


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The OpenAI-format server on the test's loop; the resumable answers still running
    and the SDK clients used on it are closed before the loop ends."""
    async with Upstream() as server:
        yield server
        await stop_answers()
        await close_providers()


async def stop_answers() -> None:
    """Cancel the resumable answers still running, as a server that stops would."""
    running = list(_generation._running)
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


@pytest.fixture(params=["aiohttp", "httpx"])
def http_client(request: pytest.FixtureRequest) -> str:
    """Each of the openai SDK's HTTP clients the provider can use (LLM_HTTP_CLIENT)."""
    return str(request.param)


@pytest.fixture(scope="module")
def threaded_upstream() -> Iterator[Upstream]:
    """The upstream on a thread of its own, for the server processes a module starts."""
    with Upstream.in_thread() as server:
        yield server
