"""The provider adapter for OpenAI's chat completions API, on the official ``openai`` SDK.

The only module that knows OpenAI's chunk format and exceptions. With ``base_url`` it
talks to any server that speaks the same API (vLLM, Ollama, llama.cpp's server...).

The SDK sends the request, retries it, raises its exceptions for errors (before the
answer and in the middle of it) and decodes the event stream. The request goes through
its generic ``post()`` rather than ``chat.completions.create()``, and the chunks come as
parsed JSON rather than its typed models: ``create()`` first walks the parameters
against the SDK's typed dicts, which changes nothing in a text conversation and took
half a millisecond per request, and building each chunk's model took over 0.1 ms per
token, both in the time to the first token.

The SDK's HTTP client is its aiohttp one by default (the SDK's ``aiohttp`` extra):
in the same server, it had the request at the model about 0.7 ms sooner than the
SDK's default, httpx.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Sequence
from typing import Any
from urllib.parse import urlsplit

import openai

from django_sse.llm._types import (
    Chunk,
    Finish,
    Message,
    ProviderError,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = ["OpenAIProvider"]

logger = logging.getLogger("django_sse")

HTTP_CLIENTS = ("aiohttp", "httpx")

# What the client is told, per error code: never the provider's own message, which
# may quote the API key's prefix, the organisation or the account's limits.
_MESSAGES = {
    "authentication": "The language model provider refused the API key.",
    "permission_denied": "The API key may not use this model.",
    "rate_limited": "The language model provider is rate limiting requests; try again later.",
    "timeout": "The language model provider did not answer in time.",
    "unavailable": "The language model provider could not be reached.",
    "context_length": "The conversation is too long for the model.",
    "bad_request": "The language model provider refused the request.",
    "upstream_error": "The language model provider failed.",
}
# Also an upstream_error, but not one to retry blindly: the provider is not speaking
# the API it claims to (or a proxy in between mangled it).
_UNREADABLE = "The language model provider sent a part of the answer that could not be read."
# What reading a chunk the provider garbled raises: the SDK's JSON and UTF-8 decoding
# (ValueError), and a chunk of another shape than OpenAI's (the rest).
_GARBLED = (ValueError, LookupError, TypeError, AttributeError)


class OpenAIProvider:
    """Streams chat completions from OpenAI, or from a server with the same API."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        http_client: str = "aiohttp",
    ) -> None:
        if http_client not in HTTP_CLIENTS:
            raise ValueError(
                f"http_client is {http_client!r}; use one of {', '.join(HTTP_CLIENTS)}"
            )
        self.model = model
        self._aiohttp = http_client == "aiohttp"
        self._options: dict[str, Any] = {
            # The SDK insists on a key; local OpenAI-compatible servers do not.
            "api_key": api_key or ("unused" if base_url else None),
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        self._max_tokens_name = "max_tokens" if base_url else "max_completion_tokens"
        # One client per event loop: its connection pool belongs to the loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI]
        self._clients = weakref.WeakKeyDictionary()

    @property
    def label(self) -> str:
        # The SDK's own default when no base URL is given (OPENAI_BASE_URL included).
        base_url = self._options["base_url"] or "https://api.openai.com/v1"
        return f"{self.model} at {urlsplit(base_url).netloc}"

    async def aclose(self) -> None:
        """Close this event loop's connections to the provider.

        A server's loop lives as long as the process and needs no call. Code that runs
        its own short-lived loops (tests, scripts) closes them before the loop ends.
        """
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            http_client = self._aiohttp_client() if self._aiohttp else None
            client = openai.AsyncOpenAI(**self._options, http_client=http_client)
            self._clients[loop] = client
        return client

    def _aiohttp_client(self) -> Any:
        """The SDK's aiohttp client, or None (its default) if it cannot make one."""
        try:
            return openai.DefaultAioHttpClient()
        except RuntimeError as error:  # the SDK's aiohttp extra is not installed
            self._aiohttp = False
            logger.warning(
                "The OpenAI provider uses the openai SDK's default HTTP client, not its "
                "faster aiohttp one: %s. Install it with pip install 'openai[aiohttp]', "
                "or set DJANGO_SSE['LLM_HTTP_CLIENT'] = 'httpx'.",
                error,
            )
            return None

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncGenerator[Chunk, None]:
        """The answer to ``messages``, piece by piece, then a Finish.

        Closing this generator (the client left) closes the HTTP response at once,
        so the provider stops generating tokens nobody will read.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if max_tokens is not None:
            # OpenAI's own API wants the newer name (its reasoning models refuse the
            # old one); compatible servers such as Ollama only read the old one.
            body[self._max_tokens_name] = max_tokens
        try:
            response = await self._client().post(
                "/chat/completions",
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
        except openai.APIError as error:
            raise _translate(error) from error
        # None until a chunk says why the answer ended: a stream that ends without one
        # was cut short, however cleanly its connection closed.
        reason, usage = None, None
        try:
            async for chunk in response:
                if not isinstance(chunk, dict):
                    raise TypeError(f"the type of a chunk is {type(chunk).__name__}, not object")
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or ():
                    if _int(choice.get("index", 0), "a choice's index") != 0:
                        continue
                    delta = choice.get("delta") or {}
                    if content := delta.get("content"):
                        yield TextDelta(_text(content, "a delta's content"))
                    # What the model says instead of an answer it declines to give.
                    if refusal := delta.get("refusal"):
                        yield RefusalDelta(_text(refusal, "a delta's refusal"))
                    for call in delta.get("tool_calls") or ():
                        yield _tool_call(call)
                    if choice.get("finish_reason"):
                        reason = _text(choice["finish_reason"], "a choice's finish_reason")
        except openai.APIError as error:
            raise _translate(error, answering=True) from error
        except _GARBLED as error:
            # The provider's fault, not ours: no traceback, whose frames would be ours.
            logger.warning(
                "%s sent a part of the answer that could not be read: %s: %s",
                self.label,
                type(error).__name__,
                error,
            )
            raise ProviderError("upstream_error", _UNREADABLE) from None
        finally:
            await response.close()
        if reason is None:
            raise ProviderError("upstream_error", _MESSAGES["upstream_error"])
        yield Finish(reason, usage)


def _usage(usage: dict[str, Any]) -> Usage:
    """The counts a usage chunk has. Some OpenAI-compatible servers leave one out; that
    leaves it unknown (None), and the answer, which is whole, stands. A count that is not
    one is made unknown, with a warning, where every provider's usage is (see _mend.py)."""
    return Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))


def _text(value: object, what: str) -> str:
    """``value``, which a chunk must have as text, or the TypeError of a garbled one."""
    if not isinstance(value, str):
        raise TypeError(f"the type of {what} is {type(value).__name__}, not str")
    return value


def _int(value: object, what: str) -> int:
    """``value``, which a chunk must have as an integer (not a bool, nor "0"), or the
    TypeError of a garbled one."""
    if type(value) is not int:
        raise TypeError(f"the type of {what} is {type(value).__name__}, not int")
    return value


def _tool_call(call: dict[str, Any]) -> ToolCallDelta:
    """A piece of a tool call, from a chunk's ``tool_calls``."""
    function = call.get("function") or {}
    call_id, name = call.get("id"), function.get("name")
    return ToolCallDelta(
        index=_int(call["index"], "a tool call's index"),
        id=None if call_id is None else _text(call_id, "a tool call's id"),
        name=None if name is None else _text(name, "a tool call's name"),
        arguments=_text(function.get("arguments") or "", "a tool call's arguments"),
    )


def _translate(error: openai.APIError, *, answering: bool = False) -> ProviderError:
    """``answering``: the answer had begun, so a lost connection is the upstream
    failing mid-answer, not one that cannot be reached."""
    code = _code(error)
    if answering and code == "unavailable":
        code = "upstream_error"
    retry_after = None
    if isinstance(error, openai.APIStatusError) and code == "rate_limited":
        retry_after = _retry_after(error.response.headers)
    return ProviderError(code, _MESSAGES[code], retry_after=retry_after)


def _code(error: openai.APIError) -> str:
    if isinstance(error, openai.APITimeoutError) and _timed_out(error):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "unavailable"
    if error.code == "context_length_exceeded":
        return "context_length"
    if not isinstance(error, openai.APIStatusError):
        return "upstream_error"  # an error event in the middle of the answer
    status = error.status_code
    if status == 401:
        return "authentication"
    if status == 403:
        return "permission_denied"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "upstream_error"
    return "bad_request"


def _timed_out(error: openai.APITimeoutError) -> bool:
    """Whether the timeout the SDK reports is one. Its aiohttp client reports every
    failure to connect (refused, no such host, the server hung up) as a connect timeout,
    over the error it translated; a real timeout has a TimeoutError under it."""
    translated = error.__cause__  # the HTTP client's own timeout error
    under = translated.__cause__ if translated is not None else None
    if under is None:
        return True  # nothing under it says otherwise
    seen: set[int] = set()  # a chain can loop back on itself
    while under is not None and id(under) not in seen:
        if isinstance(under, (TimeoutError, asyncio.TimeoutError)):
            return True
        seen.add(id(under))
        under = under.__cause__ or under.__context__
    return False


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
