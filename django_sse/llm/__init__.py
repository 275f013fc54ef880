"""LLM token streaming: relay a model's answer, cancel it, resume it, in any format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django_sse._lazy import lazy_names

__all__ = [
    "ChatView",
    "Chunk",
    "Finish",
    "GenerationView",
    "LocalTextSource",
    "Message",
    "OpenAICompatibleView",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "RefusalDelta",
    "ResumableChatView",
    "StopGenerationView",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "astop",
    "get_provider",
    "stop",
]

_LOCATIONS = {
    "ChatView": "django_sse.llm._view",
    "OpenAICompatibleView": "django_sse.llm._view",
    "ResumableChatView": "django_sse.llm._resumable",
    "GenerationView": "django_sse.llm._resumable",
    "StopGenerationView": "django_sse.llm._resumable",
    "astop": "django_sse.llm._generation",
    "stop": "django_sse.llm._generation",
    "LocalTextSource": "django_sse.llm._local",
    "OpenAIProvider": "django_sse.llm._openai",
    "Provider": "django_sse.llm._provider",
    "get_provider": "django_sse.llm._provider",
    **dict.fromkeys(
        [
            "Chunk",
            "Finish",
            "Message",
            "ProviderError",
            "RefusalDelta",
            "TextDelta",
            "ToolCallDelta",
            "Usage",
        ],
        "django_sse.llm._types",
    ),
}

if TYPE_CHECKING:
    from django_sse.llm._generation import astop, stop
    from django_sse.llm._local import LocalTextSource
    from django_sse.llm._openai import OpenAIProvider
    from django_sse.llm._provider import Provider, get_provider
    from django_sse.llm._resumable import GenerationView, ResumableChatView, StopGenerationView
    from django_sse.llm._types import (
        Chunk,
        Finish,
        Message,
        ProviderError,
        RefusalDelta,
        TextDelta,
        ToolCallDelta,
        Usage,
    )
    from django_sse.llm._view import ChatView, OpenAICompatibleView

__getattr__, __dir__ = lazy_names(__name__, _LOCATIONS, __all__)
