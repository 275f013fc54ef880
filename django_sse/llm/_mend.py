"""A provider's answer made fit to send, to store and to count, whatever the provider.

Every view takes a provider's answer through ``answer_from()``: the one place where
chunks from any provider, ours or a project's own, enter. What it mends:

**Text.** A server that cuts its text between UTF-16 code units (one written in
JavaScript that slices strings, say) sends an emoji as two escaped halves, ``"\\ud83d"``
in one chunk and ``"\\ude00"`` in the next. JSON decodes each to a lone surrogate, which
no UTF-8 encoder takes: the event that carries it cannot be sent, which ended a chat's
answer there, and cannot be published, which left a resumable answer's followers waiting
for an end that never came. A NUL, which PostgreSQL refuses, did the same to a resumable
answer. So the halves of a pair are joined again, across chunks of the same kind (the
answer's text, or a refusal's), and whatever is left that cannot be sent or stored
becomes U+FFFD, the replacement character.

**Usage.** A count that is not one (negative, a float, a str, a bool, more than the stream
log's column holds) made the metrics raise at the answer's very end, which failed an
answer the client had read whole, and the stream log could not store it. Such a count is
unknown instead (None), as a count the provider left out is, with a warning that names
the provider.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import replace

from django_sse._text import safe_text, unstorable
from django_sse.llm._provider import Provider
from django_sse.llm._types import (
    Chunk,
    Finish,
    Message,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = ["answer_from"]

logger = logging.getLogger("django_sse")

_Text = TextDelta | RefusalDelta
# The largest count the stream log's token columns (PositiveIntegerField) hold on every
# database Django supports.
MAX_COUNT = 2_147_483_647


async def answer_from(
    provider: Provider, messages: Sequence[Message], *, max_tokens: int | None = None
) -> AsyncGenerator[Chunk, None]:
    """``provider``'s answer to ``messages``, with text that UTF-8 carries and every
    database stores, and usage that is counts or unknown.

    ``provider.stream()`` is called at the first step, not now, so a provider that
    raises as it is called fails the answer as one that fails mid-answer does. A first
    half of a pair at the end of a piece waits for the next piece; closing this closes
    the provider's stream.
    """
    # A piece of only the first half of a pair, waiting for a piece of its kind.
    held: _Text | None = None
    async with aclosing(provider.stream(messages, max_tokens=max_tokens)) as chunks:
        async for chunk in chunks:
            if held is not None and type(chunk) is not type(held):
                yield _fitted(held)
                held = None
            if isinstance(chunk, _Text):
                text = chunk.text if held is None else held.text + chunk.text
                held = None
                if "\ud800" <= text[-1:] <= "\udbff":
                    held, text = replace(chunk, text=text[-1]), text[:-1]
                text = _fit(text)
                if text:
                    yield chunk if text == chunk.text else replace(chunk, text=text)
                continue
            if isinstance(chunk, ToolCallDelta):
                chunk = _fit_call(chunk)
            elif isinstance(chunk, Finish) and chunk.usage is not None:
                chunk = _counted(chunk, provider)
            yield chunk
        if held is not None:
            yield _fitted(held)


def _fit(text: str) -> str:
    if unstorable(text) is None:
        return text
    # Through UTF-16, where the two halves of a pair decode as the one character they
    # are, and a lone half as U+FFFD.
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return safe_text(joined)


def _fitted(piece: _Text) -> _Text:
    return replace(piece, text=_fit(piece.text))


def _fit_call(call: ToolCallDelta) -> ToolCallDelta:
    fitted = replace(
        call,
        id=None if call.id is None else _fit(call.id),
        name=None if call.name is None else _fit(call.name),
        arguments=_fit(call.arguments),
    )
    return call if fitted == call else fitted


def _counted(finish: Finish, provider: Provider) -> Finish:
    """``finish`` with each count that is not a count of tokens made unknown."""
    usage = finish.usage
    if not isinstance(usage, Usage):
        logger.warning(
            "%s ended an answer with the usage %r, not a Usage: it is recorded as unknown",
            _named(provider),
            usage,
        )
        return replace(finish, usage=None)
    counts = Usage(
        _count(usage.prompt_tokens, "prompt_tokens", provider),
        _count(usage.completion_tokens, "completion_tokens", provider),
    )
    return finish if counts == usage else replace(finish, usage=counts)


def _count(value: object, name: str, provider: Provider) -> int | None:
    # bool is an int to Python, not to a reader of the counts.
    if value is None or (type(value) is int and 0 <= value <= MAX_COUNT):
        return value
    logger.warning(
        "%s reported %s as %r, not a count of tokens: it is recorded as unknown",
        _named(provider),
        name,
        value,
    )
    return None


def _named(provider: Provider) -> str:
    """The provider as a warning names it: its class, and its label if it has one."""
    label = getattr(provider, "label", None)
    kind = type(provider).__qualname__
    return f"The provider {kind} ({label})" if isinstance(label, str) else f"The provider {kind}"
