"""What an answer's chunks say about it as they go by: when its first token came and
what it used. Read by the stream log and counted in the metrics, once per answer however
many streams follow it (a resumable answer's followers do not count it again)."""

from __future__ import annotations

import time

from django_sse import _metrics
from django_sse.llm._types import Chunk, Finish, Usage

__all__ = ["AnswerWatch"]


class AnswerWatch:
    def __init__(self, model: str, asked_at: float) -> None:
        """``asked_at``: time.monotonic() when the answer was asked for."""
        self._model = model
        self._asked_at = asked_at
        self.time_to_first_token: float | None = None
        self.usage: Usage | None = None

    def see(self, chunk: Chunk) -> None:
        # Any piece: a refusal or a tool call is the model's first word as much as text is.
        if self.time_to_first_token is None and not isinstance(chunk, Finish):
            self.time_to_first_token = time.monotonic() - self._asked_at
            _metrics.answer_started(self._model, self.time_to_first_token)
        if isinstance(chunk, Finish) and chunk.usage is not None:
            self.usage = chunk.usage
            # A count the provider left out adds nothing: the totals are what is known.
            _metrics.answer_used(
                self._model, chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0
            )
