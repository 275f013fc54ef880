"""Output formats: what a chat view streams, for each kind of client.

- ``native``: named events with JSON data for pages and our client (``token``,
  ``refusal``, ``tool_call``, ``done``, ``error``), ready for the template tags'
  ``json=True``.
- ``openai``: OpenAI's chat completion chunks and ``data: [DONE]``, so the official
  SDK (or anything written for OpenAI) can point its ``base_url`` at Django.
- ``vercel``: the Vercel AI SDK's UI message stream, v1, for ``useChat`` front ends.
- ``html``: the answer's text as HTML-escaped pieces in unnamed events, which htmx
  appends where the form says (``hx-swap="beforeend"``): no markup from the model ever
  reaches the page.

A format turns the provider's chunks (see _types.py) into items for the stream
engine; it never sees the provider's own format.
"""

from __future__ import annotations

import json
import time
import uuid
from html import escape
from typing import Any, ClassVar

from django_sse.llm._types import (
    Chunk,
    Finish,
    ProviderError,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from django_sse.protocol import Event

__all__ = [
    "FORMATS",
    "HtmlFormat",
    "NativeFormat",
    "OpenAIFormat",
    "OutputFormat",
    "VercelFormat",
]

DONE = Event(data="[DONE]")


class OutputFormat:
    """How one kind of client expects an answer; one instance per answer."""

    # Response headers the format's clients look for.
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, *, model: str, include_usage: bool = True) -> None:
        self.model = model
        self.include_usage = include_usage

    def start(self) -> list[Event]:
        return []

    def chunk(self, chunk: Chunk) -> list[Event]:
        raise NotImplementedError

    def error(self, error: ProviderError) -> list[Event]:
        raise NotImplementedError


class NativeFormat(OutputFormat):
    def chunk(self, chunk: Chunk) -> list[Event]:
        if isinstance(chunk, TextDelta):
            return [Event(event="token", data={"text": chunk.text})]
        if isinstance(chunk, RefusalDelta):
            return [Event(event="refusal", data={"text": chunk.text})]
        if isinstance(chunk, ToolCallDelta):
            return [Event(event="tool_call", data=_tool_call(chunk))]
        return [
            Event(
                event="done",
                data={
                    "finish_reason": chunk.reason,
                    "usage": None if chunk.usage is None else _usage(chunk.usage),
                    "model": self.model,
                },
            )
        ]

    def error(self, error: ProviderError) -> list[Event]:
        return [Event(event="error", data=error.as_dict())]


class OpenAIFormat(OutputFormat):
    """Chunks as OpenAI's API streams them (``object: chat.completion.chunk``)."""

    def __init__(self, *, model: str, include_usage: bool = True) -> None:
        super().__init__(model=model, include_usage=include_usage)
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())

    def start(self) -> list[Event]:
        return [self._event({"role": "assistant", "content": ""})]

    def chunk(self, chunk: Chunk) -> list[Event]:
        if isinstance(chunk, TextDelta):
            return [self._event({"content": chunk.text})]
        if isinstance(chunk, RefusalDelta):
            # Where OpenAI streams it, and its SDKs read it (delta.refusal).
            return [self._event({"refusal": chunk.text})]
        if isinstance(chunk, ToolCallDelta):
            call: dict[str, Any] = {"index": chunk.index}
            if chunk.id is not None:
                call.update(id=chunk.id, type="function")
            function = {"arguments": chunk.arguments}
            if chunk.name is not None:
                function = {"name": chunk.name, **function}
            call["function"] = function
            return [self._event({"tool_calls": [call]})]
        events = [self._event({}, finish_reason=chunk.reason)]
        total = None if chunk.usage is None else _total(chunk.usage)
        # OpenAI's usage has all three counts, as integers: a provider's usage without
        # one of them is sent as none at all, which its clients know.
        if self.include_usage and chunk.usage is not None and total is not None:
            usage = {**_usage(chunk.usage), "total_tokens": total}
            events.append(Event(data={**self._envelope(), "choices": [], "usage": usage}))
        events.append(DONE)
        return events

    def error(self, error: ProviderError) -> list[Event]:
        # An object with "error" in the middle of a stream is how OpenAI reports a
        # failure after the headers went out; its SDK raises APIError on it.
        body = {"message": error.message, "type": error.code, "code": error.code, "param": None}
        return [Event(data={"error": body})]

    def _envelope(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "system_fingerprint": None,
        }

    def _event(self, delta: dict[str, Any], finish_reason: str | None = None) -> Event:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = {**self._envelope(), "choices": [choice]}
        if self.include_usage:
            data["usage"] = None
        return Event(data=data)


class VercelFormat(OutputFormat):
    """The AI SDK's UI message stream protocol, v1 (AI SDK 5 and later)."""

    headers: ClassVar[dict[str, str]] = {"x-vercel-ai-ui-message-stream": "v1"}

    def __init__(self, *, model: str, include_usage: bool = True) -> None:
        super().__init__(model=model, include_usage=include_usage)
        self._message_id = f"msg-{uuid.uuid4().hex}"
        self._text_id: str | None = None
        self._texts = 0
        # Whether the open text is a refusal's, and whether the model refused at all.
        self._text_refuses = False
        self._refused = False
        # Each tool call's id, name and argument text so far, by its index.
        self._calls: dict[int, dict[str, str]] = {}

    def start(self) -> list[Event]:
        return [_part(type="start", messageId=self._message_id), _part(type="start-step")]

    def chunk(self, chunk: Chunk) -> list[Event]:
        if isinstance(chunk, TextDelta | RefusalDelta):
            return self._text(chunk)
        if isinstance(chunk, ToolCallDelta):
            return self._end_text() + self._tool_call(chunk)
        return [*self._end_text(), *self._end_tool_calls(), *self._finish(chunk)]

    def error(self, error: ProviderError) -> list[Event]:
        return [_part(type="error", errorText=error.message), DONE]

    def _text(self, chunk: TextDelta | RefusalDelta) -> list[Event]:
        """A refusal as text, as the AI SDK's own OpenAI provider streams it, in a text of
        its own: the stream has no part for a refusal, and text is what useChat shows."""
        refuses = isinstance(chunk, RefusalDelta)
        self._refused = self._refused or refuses
        events = [] if refuses == self._text_refuses else self._end_text()
        if self._text_id is None:
            self._texts += 1
            self._text_id = f"text-{self._texts}"
            self._text_refuses = refuses
            events.append(_part(type="text-start", id=self._text_id))
        events.append(_part(type="text-delta", id=self._text_id, delta=chunk.text))
        return events

    def _end_text(self) -> list[Event]:
        if self._text_id is None:
            return []
        text_id, self._text_id = self._text_id, None
        return [_part(type="text-end", id=text_id)]

    def _tool_call(self, chunk: ToolCallDelta) -> list[Event]:
        call = self._calls.get(chunk.index)
        events = []
        if call is None:
            call = self._calls[chunk.index] = {
                "id": chunk.id or f"call-{self._message_id}-{chunk.index}",
                "name": chunk.name or "",
                "arguments": "",
            }
            events.append(
                _part(type="tool-input-start", toolCallId=call["id"], toolName=call["name"])
            )
        if chunk.arguments:
            call["arguments"] += chunk.arguments
            events.append(
                _part(
                    type="tool-input-delta", toolCallId=call["id"], inputTextDelta=chunk.arguments
                )
            )
        return events

    def _end_tool_calls(self) -> list[Event]:
        events = []
        for call in self._calls.values():
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except json.JSONDecodeError:
                arguments = call["arguments"]
            events.append(
                _part(
                    type="tool-input-available",
                    toolCallId=call["id"],
                    toolName=call["name"],
                    input=arguments,
                )
            )
        self._calls.clear()
        return events

    def _finish(self, finish: Finish) -> list[Event]:
        """The finish reason where AI SDK 5.0.93+ and 6 read it, and the usage as the
        message's metadata: what useChat's onFinish gets as ``message.metadata``."""
        reason = VERCEL_FINISH_REASONS.get(finish.reason, "other")
        if self._refused and reason == "stop":
            # As the AI SDK's OpenAI provider reports a refusal: the model did not stop
            # of its own accord, it declined.
            reason = "content-filter"
        metadata: dict[str, Any] = {"finishReason": reason}
        if finish.usage is not None:
            # The SDK's usage leaves a count it does not know undefined: out.
            counts = {
                "inputTokens": finish.usage.prompt_tokens,
                "outputTokens": finish.usage.completion_tokens,
                "totalTokens": _total(finish.usage),
            }
            metadata["usage"] = {name: n for name, n in counts.items() if n is not None}
        finished = _part(type="finish", finishReason=reason, messageMetadata=metadata)
        return [_part(type="finish-step"), finished, DONE]


# OpenAI's finish reasons as the AI SDK names them (its z.enum; anything else: "other").
VERCEL_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content-filter",
    "tool_calls": "tool-calls",
}


def _part(**fields: Any) -> Event:
    return Event(data=fields)


def _tool_call(chunk: ToolCallDelta) -> dict[str, Any]:
    return {"index": chunk.index, "id": chunk.id, "name": chunk.name, "arguments": chunk.arguments}


def _usage(usage: Usage) -> dict[str, int | None]:
    """The counts as OpenAI names them; None (null) for one the provider left out."""
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}


def _total(usage: Usage) -> int | None:
    if usage.prompt_tokens is None or usage.completion_tokens is None:
        return None
    return usage.prompt_tokens + usage.completion_tokens


class HtmlFormat(OutputFormat):
    """Text pieces as escaped HTML; a refusal's pieces likewise, each in a span a page can
    style; the end as a ``done`` event (``hx-sse:close="done"``) with the finish reason,
    and a failure as a message the page shows."""

    def chunk(self, chunk: Chunk) -> list[Event]:
        if isinstance(chunk, TextDelta):
            return [Event(data=_html_piece(chunk.text))] if chunk.text else []
        if isinstance(chunk, RefusalDelta):
            refusal = f'<span class="django-sse-refusal">{escape(chunk.text)}</span>'
            return [Event(data=refusal)] if chunk.text else []
        if isinstance(chunk, ToolCallDelta):
            return []
        return [Event(event="done", data=chunk.reason)]

    def error(self, error: ProviderError) -> list[Event]:
        failure = f'<p class="django-sse-error" role="alert">{escape(error.message)}</p>'
        return [Event(data=failure), Event(event="done", data="error")]


def _html_piece(text: str) -> str:
    """``text`` escaped; a piece of white space only goes in a span, as htmx 4 swaps no
    fragment that is only white space and the words either side would run together."""
    escaped = escape(text)
    return escaped if text.strip() else f"<span>{escaped}</span>"


FORMATS: dict[str, type[OutputFormat]] = {
    "native": NativeFormat,
    "openai": OpenAIFormat,
    "vercel": VercelFormat,
    "html": HtmlFormat,
}
