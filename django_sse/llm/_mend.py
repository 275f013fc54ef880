"""A provider's text made fit to send and to store, whatever the provider streamed.

A server that cuts its text between UTF-16 code units (one written in JavaScript that
slices strings, say) sends an emoji as two escaped halves, ``"\\ud83d"`` in one chunk
and ``"\\ude00"`` in the next. JSON decodes each to a lone surrogate, which no UTF-8
encoder takes: the event that carries it cannot be sent, which ended a chat's answer
there, and cannot be published, which left a resumable answer's followers waiting for
an end that never came. A NUL, which PostgreSQL refuses, did the same to a resumable
answer.

So the halves of a pair are joined again, across chunks of the same kind (the answer's
text, or a refusal's), and whatever is left that cannot be sent or stored becomes U+FFFD,
the replacement character.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace

from django_sse._text import safe_text, unstorable
from django_sse.llm._types import Chunk, RefusalDelta, TextDelta, ToolCallDelta

__all__ = ["mended"]

_Text = TextDelta | RefusalDelta


async def mended(chunks: AsyncGenerator[Chunk, None]) -> AsyncGenerator[Chunk, None]:
    """``chunks``, with text that UTF-8 carries and every database stores.

    A first half of a pair at the end of a piece waits for the next piece; closing
    this closes ``chunks``.
    """
    # A piece of only the first half of a pair, waiting for a piece of its kind.
    held: _Text | None = None
    async with aclosing(chunks):
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
