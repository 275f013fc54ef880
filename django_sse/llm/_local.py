"""The local text source: what chat views stream when no provider is configured.

It is not a language model, and its answers say so in their first sentence. It exists
so that a chat page works with no network and no API key (the demo, a first try, a
test): it streams prepared text in word-sized tokens, with a model's pacing.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncGenerator, Sequence

from django_sse.llm._types import Chunk, Finish, Message, TextDelta, Usage

__all__ = ["LocalTextSource"]

_TOKEN = re.compile(r"\s*\S+")

_ANSWER = (
    "This answer comes from django_sse's local text source, not from a language model: "
    "no API key or base URL is configured, so the page streams prepared text at a "
    "model's pace instead. Your message was {length} characters long{preview}. "
    "Set OPENAI_API_KEY, or OPENAI_BASE_URL for any OpenAI-compatible server such as "
    "Ollama or vLLM, and the same page streams a real model's answer.\n\n"
    "Meanwhile, here is what is happening on the wire. The browser posted your message "
    "and keeps the response open; the server sends each token as a Server-Sent Event "
    "the moment it has it, and a final event with the finish reason and the token "
    "counts. Press Stop, or close the tab, and the server stops the generation at once, "
    "so with a real provider nobody pays for tokens that no one reads. Every stream is "
    "also logged, with its model, its token counts and its time to first token, in the "
    "admin's stream logs."
)


class LocalTextSource:
    """Prepared text, streamed like a model's answer; ``pace`` scales the delays
    (0 streams as fast as possible)."""

    model = "local-text"
    label = "the local text source (not a language model)"

    def __init__(
        self, *, pace: float = 1.0, first_token: float = 0.35, per_token: float = 0.04
    ) -> None:
        self._first_token = first_token * pace
        self._per_token = per_token * pace

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncGenerator[Chunk, None]:
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        tokens = _TOKEN.findall(_answer_to(question))
        if max_tokens is not None:
            tokens = tokens[:max_tokens]
        # Seeded by the question, so the same question streams the same way.
        jitter = random.Random(question)
        await asyncio.sleep(self._first_token)
        for token in tokens:
            yield TextDelta(token)
            await asyncio.sleep(self._per_token * jitter.uniform(0.3, 1.7))
        prompt_tokens = sum(len(_TOKEN.findall(message["content"])) for message in messages)
        finish = "length" if max_tokens is not None and len(tokens) == max_tokens else "stop"
        yield Finish(finish, Usage(prompt_tokens=prompt_tokens, completion_tokens=len(tokens)))


def _answer_to(question: str) -> str:
    words = question.split()
    preview = ""
    if words:
        shown = " ".join(words[:8])
        preview = f', beginning "{shown}{"…" if len(words) > 8 else ""}"'
    return _ANSWER.format(length=len(question), preview=preview)
