"""What a provider is, and which one the settings choose."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol, cast

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_sse import conf
from django_sse.llm._types import Chunk, Message

__all__ = ["Provider", "get_provider"]


class Provider(Protocol):
    """A source of streamed answers. Adapters for other APIs implement this."""

    @property
    def model(self) -> str:
        """Recorded in StreamLog, and sent in the formats that name a model."""

    @property
    def label(self) -> str:
        """Names the source for people: the model and where it runs."""

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncGenerator[Chunk, None]:
        """The answer as TextDelta/RefusalDelta/ToolCallDelta pieces, then one Finish
        (an async generator).

        Raises ProviderError on failure. Closing the iterator must end the upstream
        request promptly.
        """


def get_provider() -> Provider:
    """The provider the settings describe (see ``LLM_PROVIDER``)."""
    configured = conf.get("LLM_PROVIDER")
    if configured is not None:
        return _configured_provider(configured)
    api_key, base_url = openai_endpoint()
    if not api_key and not base_url:
        from django_sse.llm._local import LocalTextSource

        return LocalTextSource()
    return _openai_provider(
        conf.get("LLM_MODEL"),
        api_key,
        base_url,
        conf.get("LLM_TIMEOUT"),
        conf.get("LLM_MAX_RETRIES"),
        conf.get("LLM_HTTP_CLIENT"),
    )


@functools.lru_cache(maxsize=8)
def _configured_provider(path: str) -> Provider:
    """One instance per dotted path, so that requests share whatever it holds."""
    return cast(Provider, provider_class(path)())


def provider_class(path: str) -> Callable[[], Any]:
    """What ``LLM_PROVIDER`` names: something that makes a provider when called."""
    try:
        factory = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"DJANGO_SSE['LLM_PROVIDER'] = {path!r} cannot be imported: {error}"
        ) from error
    if not callable(factory):
        raise ImproperlyConfigured(
            f"DJANGO_SSE['LLM_PROVIDER'] = {path!r} is a {type(factory).__name__}, "
            "not a provider class"
        )
    return cast(Callable[[], Any], factory)


def openai_endpoint() -> tuple[str | None, str | None]:
    """The OpenAI API key and base URL: from the settings, else the environment."""
    api_key = conf.get("LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
    base_url = conf.get("LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or None
    return api_key, base_url


@functools.lru_cache(maxsize=8)
def _openai_provider(
    model: str,
    api_key: str | None,
    base_url: str | None,
    timeout: float,
    max_retries: int,
    http_client: str,
) -> Provider:
    """One provider per configuration, so that requests share its connection pool."""
    try:
        from django_sse.llm._openai import OpenAIProvider
    except ImportError as error:
        raise ImproperlyConfigured(
            "An OpenAI API key or base URL is configured, but the openai package is "
            "missing: pip install 'django-sse-kit[llm]'"
        ) from error
    return OpenAIProvider(
        model=model,
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        http_client=http_client,
    )
