"""Text a provider streams, made fit to send and store (django_sse.llm._mend)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

from django_sse.llm._mend import answer_from
from django_sse.llm._types import Chunk, Finish, Message, RefusalDelta, TextDelta, ToolCallDelta


class Replay:
    """A provider whose answer is the generator it was given."""

    model = "replay"
    label = "a replayed answer"

    def __init__(self, answer: AsyncGenerator[Chunk, None]) -> None:
        self._answer = answer

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncGenerator[Chunk, None]:
        return self._answer


def mended(answer: AsyncGenerator[Chunk, None]) -> AsyncGenerator[Chunk, None]:
    return answer_from(Replay(answer), [])


async def pieces(*chunks: Chunk) -> AsyncGenerator[Chunk, None]:
    for chunk in chunks:
        yield chunk


async def through(*chunks: Chunk) -> list[Chunk]:
    return [chunk async for chunk in mended(pieces(*chunks))]


async def test_text_that_is_fit_passes_as_it_is() -> None:
    text = TextDelta("Grüße \U0001f600")
    assert (await through(text, Finish("stop")))[0] is text


async def test_the_halves_of_a_pair_are_joined_across_pieces() -> None:
    chunks = await through(TextDelta("a \ud83d"), TextDelta("\ude00 b"), Finish("stop"))
    assert chunks == [TextDelta("a "), TextDelta("\U0001f600 b"), Finish("stop")]


async def test_a_piece_that_is_only_a_first_half_waits_for_the_next() -> None:
    chunks = await through(TextDelta("\ud83d"), TextDelta("\ude00"), Finish("stop"))
    assert chunks == [TextDelta("\U0001f600"), Finish("stop")]


async def test_a_first_half_never_completed_is_replaced_before_what_comes_next() -> None:
    call = ToolCallDelta(index=0, id="call_1", name="f", arguments="{}")
    assert await through(TextDelta("a\ud83d"), call) == [TextDelta("a"), TextDelta("\ufffd"), call]
    assert await through(TextDelta("a\ud83d")) == [TextDelta("a"), TextDelta("\ufffd")]


async def test_lone_halves_and_nul_are_replaced_in_text_and_tool_calls() -> None:
    chunks = await through(
        TextDelta("\ude00x\x00"),
        ToolCallDelta(index=0, id="call_\x00", name="f\ud800", arguments='{"a": "\udfff"}'),
    )
    assert chunks == [
        TextDelta("\ufffdx\ufffd"),
        ToolCallDelta(index=0, id="call_\ufffd", name="f\ufffd", arguments='{"a": "\ufffd"}'),
    ]


async def test_closing_it_closes_the_providers_stream() -> None:
    closed = []

    async def provider() -> AsyncGenerator[Chunk, None]:
        try:
            yield TextDelta("a")
            yield TextDelta("b")
        finally:
            closed.append(True)

    chunks = mended(provider())
    assert await anext(chunks) == TextDelta("a")
    await chunks.aclose()
    assert closed == [True]


async def test_a_refusal_is_mended_as_the_text_is() -> None:
    chunks = await through(RefusalDelta("No \ud83d"), RefusalDelta("\ude00\x00"), Finish("stop"))
    assert chunks == [RefusalDelta("No "), RefusalDelta("\U0001f600\ufffd"), Finish("stop")]


async def test_a_first_half_is_never_joined_across_text_and_refusal() -> None:
    chunks = await through(TextDelta("a\ud83d"), RefusalDelta("\ude00 no"), Finish("stop"))
    assert chunks == [
        TextDelta("a"),
        TextDelta("\ufffd"),
        RefusalDelta("\ufffd no"),
        Finish("stop"),
    ]
