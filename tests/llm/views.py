"""Chat views whose upstream scenario is chosen by the URL, for end-to-end tests.

``SSE_TEST_UPSTREAM`` is the root URL of the tests' OpenAI-format server (see
upstream.py); the ``scenario`` URL argument picks what it answers.
"""

from __future__ import annotations

import functools
import os

from django_sse.llm import (
    ChatView,
    OpenAICompatibleView,
    OpenAIProvider,
    Provider,
    ResumableChatView,
)

API_KEY = "sk-test-key"


@functools.cache
def scenario_provider(scenario: str) -> OpenAIProvider:
    root = os.environ["SSE_TEST_UPSTREAM"]
    return OpenAIProvider(model="gpt-test", base_url=f"{root}/{scenario}/v1", max_retries=0)


class ScenarioChatView(ChatView):
    def get_provider(self) -> Provider:
        return scenario_provider(self.kwargs["scenario"])


class ScenarioOpenAIView(OpenAICompatibleView):
    api_keys = [API_KEY]

    def get_provider(self) -> Provider:
        return scenario_provider(self.kwargs["scenario"])


class ScenarioResumableView(ResumableChatView):
    def get_provider(self) -> Provider:
        return scenario_provider(self.kwargs["scenario"])
