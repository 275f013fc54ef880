"""ChatView: stream a language model's answer to a posted conversation.

The conversation is checked before anything goes upstream (a 400 with a JSON error
otherwise). The answer is relayed as it arrives, in the view's output format. When
the client leaves, the engine closes the stream's source, which closes the upstream
HTTP response: the provider stops generating, and billing, at once.

The request to the provider goes out as soon as the response is made, while Django
sends its headers, rather than once the body is read (see _head_start.py).
"""

from __future__ import annotations

import hmac
import inspect
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from django_sse.llm._formats import FORMATS, OutputFormat
from django_sse.llm._head_start import HeadStart
from django_sse.llm._mend import answer_from
from django_sse.llm._messages import InvalidChat, read_body, read_chat
from django_sse.llm._provider import Provider, get_provider
from django_sse.llm._types import Chunk, Message, ProviderError
from django_sse.llm._watch import AnswerWatch
from django_sse.response import SSEResponse
from django_sse.views import SSEView

__all__ = ["ChatView", "OpenAICompatibleView"]

logger = logging.getLogger("django_sse")


class ChatView(SSEView):
    """POST a conversation, get the answer streamed as Server-Sent Events.

    The body is JSON (``{"messages": [...]}`` or ``{"prompt": "..."}``) or a form
    with a ``prompt`` field; CSRF protection applies as to any POST. The answer ends
    with a ``done`` event (finish reason and token usage) or an ``error`` event with
    a stable ``code`` and a message that is safe to show.
    """

    http_method_names = ["post", "options"]

    # None: the provider the settings choose (see the LLM_* settings).
    provider: Provider | None = None
    # "native", "openai", "vercel" or "html" (see django_sse.llm formats).
    output_format: str = "native"
    # Put before the client's messages; the client may not send system messages of
    # its own unless allow_system_messages is set.
    system_prompt: str | None = None
    allow_system_messages: bool = False
    # The most tokens an answer may have; None leaves it to the provider.
    max_tokens: int | None = None

    # The request's body as read (JSON, or a form's prompt), and the conversation
    # that goes to the model.
    body: dict[str, Any]
    messages: list[Message]

    def get_provider(self) -> Provider:
        return self.provider if self.provider is not None else get_provider()

    def get_messages(
        self, request: HttpRequest, messages: list[Message]
    ) -> list[Message] | Awaitable[list[Message]]:
        """What is sent to the model: the client's conversation after the system prompt.

        May be async, e.g. to add context from the database.
        """
        if self.system_prompt is None:
            return messages
        return [Message(role="system", content=self.system_prompt), *messages]

    def get_output_format(self, request: HttpRequest) -> OutputFormat:
        try:
            format_class = FORMATS[self.output_format]
        except KeyError:
            raise ValueError(
                f"{type(self).__name__}.output_format is {self.output_format!r}; "
                f"use one of {', '.join(FORMATS)}"
            ) from None
        return format_class(model=self._provider.model)

    async def _check_access(self, request: HttpRequest) -> HttpResponseBase | None:
        denied = await super()._check_access(request)
        if denied is not None:
            return denied
        try:
            self.body = read_body(request)
            messages = self.get_messages(
                request, read_chat(self.body, allow_system=self.allow_system_messages)
            )
        except InvalidChat as error:
            return self.invalid(str(error))
        self.messages = await messages if inspect.isawaitable(messages) else messages
        self._provider = self.get_provider()
        self._format = self.get_output_format(request)
        return None

    def invalid(self, message: str) -> HttpResponseBase:
        """The 400 answer to a conversation that cannot be sent to the model."""
        return error_response(400, "invalid_request", message)

    async def _respond(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self._received = time.monotonic()
        response = await super()._respond(request, *args, **kwargs)
        if isinstance(response, SSEResponse):
            # The stream's life, not the response: see django_sse._lifecycle.
            self._life = response._life
            response.stats.model = self._provider.model
            for name, value in self._format.headers.items():
                response[name] = value
            # Sent now, while Django sends the headers, not once the body is read.
            self._head_start = HeadStart(self._ask())
        return response

    def _ask(self) -> AsyncGenerator[Chunk, None]:
        """The provider's answer to the conversation, piece by piece."""
        return answer_from(self._provider, self.messages, max_tokens=self.max_tokens)

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        answer = self._format
        stats = self._life.stats
        watch = AnswerWatch(self._provider.model, self._received)
        for event in answer.start():
            yield event
        try:
            # Asked afresh only if the head start was given up (see _head_start.py).
            chunks = self._head_start.take() or self._ask()
            async with aclosing(chunks):
                async for chunk in chunks:
                    watch.see(chunk)
                    stats.time_to_first_token = watch.time_to_first_token
                    if watch.usage is not None:
                        stats.prompt_tokens = watch.usage.prompt_tokens
                        stats.completion_tokens = watch.usage.completion_tokens
                    for event in answer.chunk(chunk):
                        yield event
        except Exception as error:
            failure = error if isinstance(error, ProviderError) else _unexpected(error)
            for event in answer.error(failure):
                yield event
            self._life.record_error(error)


class OpenAICompatibleView(ChatView):
    """An endpoint that OpenAI's SDKs can use as their ``base_url``'s chat completions.

    Route it at ``<prefix>/chat/completions`` and give clients ``<prefix>`` as their
    base URL. Clients authenticate with ``Authorization: Bearer <key>``, checked by
    ``check_api_key()`` against ``api_keys``; with no keys every request gets a 401.
    CSRF does not apply: these clients are not browsers holding a session.
    """

    output_format = "openai"
    allow_system_messages = True
    api_keys: Sequence[str] = ()

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        view = super().as_view(**initkwargs)
        view.csrf_exempt = True  # type: ignore[attr-defined]
        return view

    async def check_api_key(self, request: HttpRequest, key: str) -> bool:
        return any(hmac.compare_digest(key.encode(), known.encode()) for known in self.api_keys)

    async def _check_access(self, request: HttpRequest) -> HttpResponseBase | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not await self.check_api_key(request, key.strip()):
            return _openai_error(401, "invalid_api_key", "Incorrect or missing API key.")
        try:
            denied = await super()._check_access(request)
        except PermissionDenied as error:
            return _openai_error(403, "permission_denied", str(error))
        if denied is not None:
            return denied
        if self.body.get("stream") is not True:
            return _openai_error(400, "unsupported", 'Only streaming ("stream": true) is served.')
        options = self.body.get("stream_options")
        self._format.include_usage = isinstance(options, dict) and bool(
            options.get("include_usage")
        )
        return None

    def invalid(self, message: str) -> HttpResponseBase:
        return _openai_error(400, "invalid_request", message)


def error_response(status: int, code: str, message: str) -> JsonResponse:
    """A refusal as chat clients read it: ``{"error": {"code", "message"}}``."""
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _unexpected(error: Exception) -> ProviderError:
    """A failure that is not the provider's, told in the answer's own format."""
    logger.error("The answer failed", exc_info=error)
    return ProviderError("upstream_error", "The answer failed on the server.")


def _openai_error(status: int, code: str, message: str) -> JsonResponse:
    """An error in the shape OpenAI's API uses, which its SDKs turn into exceptions."""
    kind = {401: "authentication_error", 403: "permission_error"}.get(
        status, "invalid_request_error"
    )
    return JsonResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status
    )
