from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.llm.support import close_providers
from tests.llm.upstream import Upstream


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The OpenAI-format server on the test's loop; the SDK clients used on it are
    closed before the loop ends."""
    async with Upstream() as server:
        yield server
        await close_providers()


@pytest.fixture(params=["aiohttp", "httpx"])
def http_client(request: pytest.FixtureRequest) -> str:
    """Each of the openai SDK's HTTP clients the provider can use (LLM_HTTP_CLIENT)."""
    return str(request.param)
