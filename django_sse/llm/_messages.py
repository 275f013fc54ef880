"""Read and check the conversation a client posts, before anything is sent upstream.

Accepted bodies:

- JSON ``{"messages": [{"role": ..., "content": ...}, ...]}``, where content is a
  string or OpenAI's list of ``{"type": "text", "text": ...}`` parts (and, in an
  assistant's message, ``{"type": "refusal", "refusal": ...}``);
- JSON from the Vercel AI SDK's ``useChat``: messages with ``parts`` instead of
  ``content``, of which the text parts are read, and the SDK's record of how an answer
  was made (steps, reasoning, tool calls, sources, data) is left out;
- JSON ``{"prompt": "..."}``, or a form with a ``prompt`` field: one user message.

A ``developer`` message, which OpenAI's newer SDKs send where older ones sent
``system`` (for its o1 and newer models, it replaces ``system``), is read as the
``system`` message it is: the view's rules for system messages apply to it, and the
provider gets ``system``, the role that every OpenAI-compatible server knows.

Everything else is an ``InvalidChat`` naming what is wrong, which the view answers
with a 400. That includes a part the model would have to see that a provider, which
takes text messages, cannot carry (an image, audio, a file): dropped, the model would
answer a question it was never asked. The limits come from the ``LLM_MAX_*`` settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from django_sse import conf
from django_sse._text import unstorable
from django_sse.llm._types import Message, Role

__all__ = ["InvalidChat", "read_body", "read_chat"]

# Each role a client may send, and the role it has in the conversation.
_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}


class InvalidChat(ValueError):
    """The posted conversation cannot be sent to a model; the message says why."""


def read_chat(body: dict[str, Any], *, allow_system: bool = False) -> list[Message]:
    """The conversation in a request's body (see ``read_body``), checked against the limits."""
    if "messages" in body:
        messages = _messages(body["messages"], allow_system)
    elif "prompt" in body:
        messages = [Message(role="user", content=_text(body["prompt"], "prompt"))]
    else:
        raise InvalidChat('Send "messages" (a list of {"role", "content"}) or a "prompt"')
    _check(messages)
    return messages


def read_body(request: HttpRequest) -> dict[str, Any]:
    """The body as a dict: JSON as sent, a form as its ``prompt``."""
    try:
        content_type = request.content_type or ""
        if content_type == "application/json":
            try:
                body = json.loads(request.body)
            except RecursionError:
                raise InvalidChat("The JSON body is nested too deeply") from None
            except ValueError as error:
                # Malformed, not UTF-8, or an integer over Python's digit limit.
                raise InvalidChat(f"The body is not valid JSON: {error}") from None
            if not isinstance(body, dict):
                raise InvalidChat("The JSON body must be an object")
            return body
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return {"prompt": request.POST["prompt"]} if "prompt" in request.POST else {}
    except RequestDataTooBig:
        raise InvalidChat("The body is too large") from None
    except (TooManyFieldsSent, TooManyFilesSent) as error:
        # Django's own answer to these would be an empty HTML page.
        raise InvalidChat(f"The form has too many parts: {error}") from None
    except MultiPartParserError as error:
        raise InvalidChat(f"The form body is malformed: {error}") from None
    raise InvalidChat(
        f"Send the conversation as application/json or a form, not {content_type or 'nothing'}"
    )


def _messages(value: Any, allow_system: bool) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise InvalidChat('"messages" must be a non-empty list')
    limit = conf.get("LLM_MAX_MESSAGES")
    if len(value) > limit:
        raise InvalidChat(f"Too many messages: {len(value)}, at most {limit}")
    return [_message(item, n, allow_system) for n, item in enumerate(value)]


def _message(item: Any, n: int, allow_system: bool) -> Message:
    where = f"messages[{n}]"
    if not isinstance(item, dict):
        raise InvalidChat(f"{where} must be an object with a role and content")
    sent = item.get("role")
    role = _ROLES.get(sent) if isinstance(sent, str) else None
    if role is None:
        raise InvalidChat(f"{where}.role must be one of {', '.join(_ROLES)}, not {sent!r}")
    if role == "system" and not allow_system:
        raise InvalidChat(
            f"{where} is a {sent} message: system and developer messages are set by the "
            "server, not sent by the client"
        )
    if "content" in item:
        content = _content(item["content"], f"{where}.content", role)
    elif "parts" in item:
        content = _parts(item["parts"], f"{where}.parts", _ui_part)
    else:
        raise InvalidChat(f"{where} has no content")
    return Message(role=role, content=content)


# Reads a part's text, given the part and where it is; None for a part with nothing for
# the model.
_PartReader = Callable[[dict[str, Any], str], str | None]


def _content(value: Any, where: str, role: Role) -> str:
    if isinstance(value, list):
        return _parts(value, where, _assistant_part if role == "assistant" else _content_part)
    return _text(value, where)


def _parts(value: Any, where: str, read: _PartReader) -> str:
    """The text of a list of parts, each read by ``read``."""
    if not isinstance(value, list):
        raise InvalidChat(f"{where} must be a list of parts")
    texts = []
    for n, part in enumerate(value):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidChat(f"{where}[{n}] must be an object with a type")
        text = read(part, f"{where}[{n}]")
        if text is not None:
            texts.append(text)
    if not texts:
        raise InvalidChat(f"{where} has no text part")
    return "".join(texts)


def _content_part(part: dict[str, Any], where: str) -> str:
    """An OpenAI content part, which must be text."""
    if part["type"] != "text":
        raise _not_text(part, where)
    return _text(part.get("text"), f"{where}.text")


def _assistant_part(part: dict[str, Any], where: str) -> str:
    """An assistant's content part, which may be what it said when it declined to answer."""
    if part["type"] == "refusal":
        return _text(part.get("refusal"), f"{where}.refusal")
    return _content_part(part, where)


def _ui_part(part: dict[str, Any], where: str) -> str | None:
    """A ``useChat`` part: its text; a file, which the model would not see, refused."""
    if part["type"] == "text":
        return _text(part.get("text"), f"{where}.text")
    if part["type"] == "file":
        raise _not_text(part, where)
    return None


def _not_text(part: dict[str, Any], where: str) -> InvalidChat:
    return InvalidChat(
        f"{where} has the type {part['type']!r}: only text parts can be sent to the model"
    )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidChat(f"{where} must be a string")
    # The provider's request, encoded as UTF-8, would fail mid-answer.
    if (problem := unstorable(value)) is not None:
        raise InvalidChat(f"{where} contains {problem}")
    limit = conf.get("LLM_MAX_MESSAGE_LENGTH")
    if len(value) > limit:
        raise InvalidChat(f"{where} is too long: {len(value)} characters, at most {limit}")
    return value


def _check(messages: Sequence[Message]) -> None:
    if messages[-1]["role"] != "user":
        raise InvalidChat("The last message must be the user's")
    if not messages[-1]["content"].strip():
        raise InvalidChat("The last message is empty")
    total = sum(len(m["content"]) for m in messages)
    limit = conf.get("LLM_MAX_CONVERSATION_LENGTH")
    if total > limit:
        raise InvalidChat(f"The conversation is too long: {total} characters, at most {limit}")
