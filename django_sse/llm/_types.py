"""What a provider streams, in no provider's format: the one vocabulary between them.

A provider adapter turns its wire format into these; an output format turns these
into events for a client. Neither side knows the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypedDict

__all__ = [
    "Chunk",
    "Finish",
    "Message",
    "ProviderError",
    "RefusalDelta",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
]

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    """One message of a conversation, as OpenAI's chat API takes it."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    """The next piece of the model's refusal to answer, which it writes instead of the
    answer's text (OpenAI's ``delta.refusal``): what the model said, for the client to
    show, told apart from an answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call the model is making; ``index`` tells the calls apart.

    The first piece of a call carries its ``id`` and function ``name``; ``arguments``
    is a fragment of the JSON arguments, to be joined in order.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the model read (the prompt) and wrote (the answer); None for a count the
    provider left out (some OpenAI-compatible servers report only one of them)."""

    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True, slots=True)
class Finish:
    """The answer is complete. ``reason`` as OpenAI names it: stop, length,
    tool_calls, content_filter; ``usage`` when the provider reported it."""

    reason: str
    usage: Usage | None = None


Chunk = TextDelta | RefusalDelta | ToolCallDelta | Finish


class ProviderError(Exception):
    """The provider failed; safe to show the client.

    ``code`` is one of a small stable set (see ``CODES``), and ``message`` never
    carries the provider's own text, which can include account details or the key's
    prefix. ``retry_after`` is in seconds, when the provider said when to retry.
    """

    CODES = (
        "authentication",  # the API key was refused
        "permission_denied",  # the key may not use this model or endpoint
        "rate_limited",  # too many requests or tokens; see retry_after
        "timeout",  # the provider did not answer in time
        "unavailable",  # the provider could not be reached
        "context_length",  # the conversation is too long for the model
        "bad_request",  # the provider refused the request for another reason
        "upstream_error",  # the provider failed (5xx), before or during the answer
    )
    # The client is shown this message, so its stream log keeps it as it is: redaction
    # would hide "The" in "authentication: The language model provider refused...".
    message_is_public: ClassVar[bool] = True

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        if code not in self.CODES:
            raise ValueError(f"Unknown provider error code {code!r}; use one of {self.CODES}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, object]:
        described: dict[str, object] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            described["retry_after"] = self.retry_after
        return described
