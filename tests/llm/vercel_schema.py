"""A checker for the Vercel AI SDK's UI message stream protocol, v1, for our tests.

What it follows, read on GitHub in vercel/ai (the ``ai`` package, AI SDK 6 line):

* ``packages/ai/src/ui-message-stream/ui-message-chunks.ts`` at commit
  014f4437a9faabe3e62741158a43534ebb93cd7a: ``uiMessageChunkSchema``, a ``z.union`` of
  ``z.strictObject`` variants (unknown keys are rejected). The chunk set and fields match
  the published ai@6.0.x sources, except that this commit also has an optional ``_meta``
  on ``tool-input-start``/``tool-input-available``. We leave that field out, because a
  client with a strict schema that does not know it rejects the whole chunk.
* ``ui-message-stream-headers.ts`` (the response headers) and
  ``json-to-sse-transform-stream.ts`` (``data: <json>\\n\\n`` per chunk, then
  ``data: [DONE]\\n\\n``).
* ``packages/ai/src/ui/process-ui-message-stream.ts``, which gives the ordering rules the
  client depends on: a ``text-delta`` or ``text-end`` whose id has no open ``text-start``
  throws ``UIMessageStreamError`` (a ``TypeError`` before that error was added), and
  ``finish-step`` forgets every open text and reasoning part.

Compared with that schema, this checker is stricter in these ways:

* A field that zod types as ``z.unknown()`` (``data``, ``input``, ``output``, the
  ``message-metadata`` chunk's ``messageMetadata``) must be present, as the TypeScript
  type requires. zod would also accept the key being left out.
* An optional field is either left out or has its type. It is never ``null``: zod's
  ``.optional()`` rejects ``null``, so never serialize ``None``.
* Float values must be finite. Python can write ``NaN``, but ``JSON.parse`` rejects it.
* ``validate_stream`` adds rules that ``streamText`` always follows: ``start`` comes
  first, and content chunks come between ``start-step`` and ``finish-step``.

Only the types that this schema lists are accepted. Newer types in the docs
(``reasoning-file``, ``custom``, ``tool-approval-response``) are rejected, because older
clients fail on them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = [
    "CHUNK_TYPES",
    "EXPECTED_HEADERS",
    "FINISH_REASONS",
    "UPSTREAM_HEADERS",
    "check_headers",
    "parse_wire",
    "validate_chunk",
    "validate_stream",
]

# Exactly what createUIMessageStreamResponse sets (ui-message-stream-headers.ts).
UPSTREAM_HEADERS: dict[str, str] = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-vercel-ai-ui-message-stream": "v1",
    "x-accel-buffering": "no",
}

# What our responses must carry. "connection" is left out because it is a hop-by-hop
# header: a WSGI application may not set it (wsgiref asserts this), and the server
# manages it anyway. The client (DefaultChatTransport) checks none of these headers.
# The docs make x-vercel-ai-ui-message-stream: v1 mandatory for custom backends.
EXPECTED_HEADERS: dict[str, str] = {
    name: value for name, value in UPSTREAM_HEADERS.items() if name != "connection"
}

# z.enum in the `finish` chunk. AI SDK 5 (from 5.0.93) also allowed "unknown", which
# AI SDK 6 merged into "other"; a v6 client rejects "unknown".
FINISH_REASONS = frozenset({"stop", "length", "content-filter", "tool-calls", "error", "other"})


# --- value checks: (description used in messages, predicate) ------------------------


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _is_provider_metadata(value: Any) -> bool:
    # z.record(z.string(), z.record(z.string(), jsonValueSchema))
    return isinstance(value, dict) and all(
        isinstance(name, str) and isinstance(entries, dict) and _is_json(entries)
        for name, entries in value.items()
    )


_Check = tuple[str, Callable[[Any], bool]]

STRING: _Check = ("a string", lambda v: isinstance(v, str))
BOOLEAN: _Check = ("a boolean", lambda v: isinstance(v, bool))
JSON_VALUE: _Check = ("a JSON value", _is_json)
PROVIDER_METADATA: _Check = (
    "an object of per-provider objects (providerMetadata)",
    _is_provider_metadata,
)
FINISH_REASON: _Check = (f"one of {sorted(FINISH_REASONS)}", lambda v: v in FINISH_REASONS)


@dataclass(frozen=True)
class _Spec:
    required: dict[str, _Check] = field(default_factory=dict)
    optional: dict[str, _Check] = field(default_factory=dict)


_PM = {"providerMetadata": PROVIDER_METADATA}
_TOOL_FLAGS = {"providerExecuted": BOOLEAN, "dynamic": BOOLEAN}

_SPECS: dict[str, _Spec] = {
    "start": _Spec(optional={"messageId": STRING, "messageMetadata": JSON_VALUE}),
    "start-step": _Spec(),
    "text-start": _Spec({"id": STRING}, _PM),
    "text-delta": _Spec({"id": STRING, "delta": STRING}, _PM),
    "text-end": _Spec({"id": STRING}, _PM),
    "reasoning-start": _Spec({"id": STRING}, _PM),
    "reasoning-delta": _Spec({"id": STRING, "delta": STRING}, _PM),
    "reasoning-end": _Spec({"id": STRING}, _PM),
    "tool-input-start": _Spec(
        {"toolCallId": STRING, "toolName": STRING},
        {**_TOOL_FLAGS, **_PM, "title": STRING},
    ),
    "tool-input-delta": _Spec({"toolCallId": STRING, "inputTextDelta": STRING}),
    "tool-input-available": _Spec(
        {"toolCallId": STRING, "toolName": STRING, "input": JSON_VALUE},
        {**_TOOL_FLAGS, **_PM, "title": STRING},
    ),
    "tool-input-error": _Spec(
        {"toolCallId": STRING, "toolName": STRING, "input": JSON_VALUE, "errorText": STRING},
        {**_TOOL_FLAGS, **_PM, "title": STRING},
    ),
    "tool-approval-request": _Spec({"approvalId": STRING, "toolCallId": STRING}),
    "tool-output-available": _Spec(
        {"toolCallId": STRING, "output": JSON_VALUE},
        {**_TOOL_FLAGS, "preliminary": BOOLEAN},
    ),
    "tool-output-error": _Spec({"toolCallId": STRING, "errorText": STRING}, _TOOL_FLAGS),
    "tool-output-denied": _Spec({"toolCallId": STRING}),
    "source-url": _Spec({"sourceId": STRING, "url": STRING}, {"title": STRING, **_PM}),
    "source-document": _Spec(
        {"sourceId": STRING, "mediaType": STRING, "title": STRING},
        {"filename": STRING, **_PM},
    ),
    "file": _Spec({"url": STRING, "mediaType": STRING}, _PM),
    "message-metadata": _Spec({"messageMetadata": JSON_VALUE}),
    "error": _Spec({"errorText": STRING}),
    "abort": _Spec(optional={"reason": STRING}),
    "finish-step": _Spec(),
    "finish": _Spec(optional={"finishReason": FINISH_REASON, "messageMetadata": JSON_VALUE}),
}
# `data-<name>` chunks: any type that starts with "data-".
_DATA_SPEC = _Spec({"data": JSON_VALUE}, {"id": STRING, "transient": BOOLEAN})

CHUNK_TYPES = frozenset(_SPECS)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:80]


def validate_chunk(obj: Any) -> None:
    """Raise ValueError unless ``obj`` is a chunk that matches the schema for its type."""
    if not isinstance(obj, dict):
        raise ValueError(f"a chunk must be a JSON object, got {_describe(obj)}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"a chunk needs a string 'type', got {_describe(kind)}: {obj!r}"[:200])
    spec = _DATA_SPEC if kind.startswith("data-") else _SPECS.get(kind)
    if spec is None:
        raise ValueError(f"unknown chunk type {kind!r}")
    missing = [name for name in spec.required if name not in obj]
    if missing:
        raise ValueError(f"{kind} chunk: missing required field(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - {"type"} - set(spec.required) - set(spec.optional))
    if unknown:
        raise ValueError(
            f"{kind} chunk: unknown field(s) {', '.join(unknown)} "
            "(the schema is a strictObject; a client rejects the whole chunk)"
        )
    for name, (expected, check) in (spec.required | spec.optional).items():
        if name in obj and not check(obj[name]):
            hint = " (leave an optional field out instead of null)" if obj[name] is None else ""
            raise ValueError(
                f"{kind} chunk: field {name} must be {expected}, got {_describe(obj[name])}{hint}"
            )


# Chunks that become parts of the message: the house rule keeps them inside a step.
_IN_STEP = frozenset(CHUNK_TYPES - {"start", "start-step", "finish-step", "finish"})
_IN_STEP -= {"message-metadata", "error", "abort"}
_TOOL_FOLLOW_UPS = frozenset(
    {"tool-approval-request", "tool-output-available", "tool-output-error", "tool-output-denied"}
)


def validate_stream(chunks: list[dict[str, Any]]) -> None:
    """Raise ValueError unless ``chunks`` (without [DONE]) form one valid response.

    Every chunk must pass ``validate_chunk``. The rules: ``start`` comes first and only
    there. ``start-step`` and ``finish-step`` alternate, and content chunks come between
    them. A text or reasoning id is open from its ``-start`` to its ``-end``, its deltas
    come in between, and it is closed before ``finish-step``. A ``tool-input-delta``
    follows its ``tool-input-start``, and outputs follow a ``tool-input-available`` or
    ``tool-input-error`` for the same call. The stream ends with ``finish``, ``error``
    or ``abort``. After ``error`` or ``abort`` only ``finish-step`` and ``finish``
    may follow; the client stops at ``error``. Nothing follows ``finish``.
    """
    if not chunks:
        raise ValueError("the stream has no chunks; it must begin with 'start'")
    in_step = False
    open_text: set[str] = set()
    open_reasoning: set[str] = set()
    streaming_tools: dict[str, str] = {}  # toolCallId -> toolName, input still streaming
    known_tools: dict[str, str] = {}  # toolCallId -> toolName, input complete or failed
    failed: str | None = None  # "error" or "abort" once seen
    finished = False

    for index, chunk in enumerate(chunks):
        try:
            validate_chunk(chunk)
        except ValueError as exc:
            raise ValueError(f"chunk {index}: {exc}") from None
        kind: str = chunk["type"]

        def fail(reason: str, index: int = index, kind: str = kind) -> NoReturn:
            raise ValueError(f"chunk {index} ({kind}): {reason}")

        if finished:
            fail("nothing may follow 'finish'")
        if index == 0 and kind != "start":
            fail("the first chunk must be 'start'")
        if kind == "start" and index != 0:
            fail("'start' may only be the first chunk")
        if failed is not None and kind not in ("finish-step", "finish"):
            fail(f"only 'finish-step' or 'finish' may follow '{failed}'")
        if kind in _IN_STEP and not in_step:
            fail("content chunks must come between 'start-step' and 'finish-step'")

        if kind == "start-step":
            if in_step:
                fail("a step is already open; send 'finish-step' first")
            in_step = True
        elif kind == "finish-step":
            if not in_step:
                fail("no step is open")
            if failed is None:
                if open_text or open_reasoning:
                    ids = sorted(open_text | open_reasoning)
                    fail(f"parts still open: {ids}; the client drops them at 'finish-step'")
                if streaming_tools:
                    fail(f"tool input still streaming for {sorted(streaming_tools)}")
            in_step = False
        elif kind in ("text-start", "reasoning-start"):
            opened = open_text if kind == "text-start" else open_reasoning
            if chunk["id"] in opened:
                fail(f"id {chunk['id']!r} is already open")
            opened.add(chunk["id"])
        elif kind in ("text-delta", "text-end", "reasoning-delta", "reasoning-end"):
            family = kind.split("-")[0]
            opened = open_text if family == "text" else open_reasoning
            if chunk["id"] not in opened:
                fail(f"no open '{family}-start' with id {chunk['id']!r}")
            if kind.endswith("-end"):
                opened.discard(chunk["id"])
        elif kind == "tool-input-start":
            call = chunk["toolCallId"]
            if call in streaming_tools or call in known_tools:
                fail(f"tool call {call!r} was already started")
            streaming_tools[call] = chunk["toolName"]
        elif kind == "tool-input-delta":
            if chunk["toolCallId"] not in streaming_tools:
                fail(f"no streaming 'tool-input-start' for tool call {chunk['toolCallId']!r}")
        elif kind in ("tool-input-available", "tool-input-error"):
            call = chunk["toolCallId"]
            if call in known_tools:
                fail(f"tool call {call!r} already has its input")
            name = streaming_tools.pop(call, chunk["toolName"])
            if name != chunk["toolName"]:
                fail(f"toolName {chunk['toolName']!r} differs from the start's {name!r}")
            known_tools[call] = name
        elif kind in _TOOL_FOLLOW_UPS:
            if chunk["toolCallId"] not in known_tools:
                fail(f"no tool call {chunk['toolCallId']!r} with complete input in this stream")
        elif kind in ("error", "abort"):
            failed = kind
        elif kind == "finish":
            if failed is None and in_step:
                fail("a step is still open; send 'finish-step' first")
            finished = True

    if not finished and failed is None:
        raise ValueError("the stream must end with 'finish', 'error' or 'abort'")
    if not finished and chunks[-1]["type"] not in ("error", "abort"):
        raise ValueError(f"after '{failed}' the stream must end, or end with 'finish'")


def parse_wire(body: bytes | str) -> list[dict[str, Any]]:
    """Split a response body into its chunks, checking the SSE framing.

    Each event is a single ``data: <JSON object>`` line followed by a blank line, as
    JsonToSseTransformStream writes. The body ends with ``data: [DONE]`` and a blank
    line. Comment lines (keep-alives; recent SDK versions send ``: keep-alive``) and
    ``id:`` and ``retry:`` fields are allowed, since the client ignores them. ``event:``
    is rejected: the UI message stream sends unnamed events only. Lines must end with
    ``\\n``, as the SDK's own lines do. Returns the chunks without [DONE] and does not
    validate them; use ``validate_stream`` for that.
    """
    text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    if "\r" in text:
        raise ValueError("the UI message stream uses LF line endings only")
    if not text.endswith("\n\n"):
        raise ValueError("the body must end with a complete event (a blank line)")
    chunks: list[dict[str, Any]] = []
    done = False
    data_lines: list[str] = []
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        if line.startswith(":"):
            continue
        if line == "":
            if not data_lines:
                continue
            if len(data_lines) > 1:
                raise ValueError(f"line {number}: one event has {len(data_lines)} data lines")
            if done:
                raise ValueError(f"line {number}: an event follows 'data: [DONE]'")
            payload = data_lines.pop()
            if payload == "[DONE]":
                done = True
                continue
            try:
                chunk = json.loads(payload)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number - 1}: data is not JSON: {exc}") from None
            if not isinstance(chunk, dict):
                raise ValueError(f"line {number - 1}: data is not a JSON object")
            chunks.append(chunk)
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data_lines.append(value[1:] if value.startswith(" ") else value)
        elif name in ("id", "retry"):
            continue
        else:
            raise ValueError(f"line {number}: unexpected field {name!r} in {line!r}"[:200])
    if not done:
        raise ValueError("the body does not end with 'data: [DONE]'")
    return chunks


def check_headers(headers: Mapping[str, str]) -> None:
    """Raise ValueError unless ``headers`` carry EXPECTED_HEADERS.

    Names are matched case-insensitively. content-type is compared by media type, so
    ``; charset=utf-8`` is fine. cache-control must include ``no-cache``.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, expected in EXPECTED_HEADERS.items():
        actual = lowered.get(name)
        if actual is None:
            raise ValueError(f"missing header {name}: {expected}")
        if name == "content-type":
            ok = actual.split(";")[0].strip().lower() == expected
        elif name == "cache-control":
            ok = expected in [token.strip().lower() for token in actual.split(",")]
        else:
            ok = actual.strip() == expected
        if not ok:
            raise ValueError(f"header {name} is {actual!r}, expected {expected!r}")
