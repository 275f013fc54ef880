"""What a chat view accepts as a conversation, and the clear errors for the rest."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import RequestFactory, override_settings

from django_sse.llm._messages import InvalidChat, read_body, read_chat


def chat(body: Any, **options: Any) -> list[Any]:
    request = RequestFactory().post("/", json.dumps(body), content_type="application/json")
    return read_chat(read_body(request), **options)


def test_openai_style_messages() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "How "}, {"type": "text", "text": "are you?"}],
        },
    ]
    assert chat({"messages": messages}) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]


def test_use_chat_ui_messages_with_parts() -> None:
    body = {
        "id": "chat-1",
        "trigger": "submit-message",
        "messages": [
            {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]},
            {"id": "m2", "role": "assistant",
             "parts": [{"type": "step-start"}, {"type": "text", "text": "Hello", "state": "done"}]},
            {"id": "m3", "role": "user", "parts": [{"type": "text", "text": "More"}]},
        ],
    }  # fmt: skip
    assert [m["content"] for m in chat(body)] == ["Hi", "Hello", "More"]


def test_a_prompt_in_json_or_a_form() -> None:
    assert chat({"prompt": "Hi"}) == [{"role": "user", "content": "Hi"}]
    request = RequestFactory().post("/", {"prompt": "From a form"})
    assert read_chat(read_body(request)) == [{"role": "user", "content": "From a form"}]


def test_system_messages_only_when_allowed() -> None:
    body = {
        "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
    }
    with pytest.raises(
        InvalidChat,
        match=r"messages\[0\] is a system message: system and developer messages are set by",
    ):
        chat(body)
    assert chat(body, allow_system=True)[0] == {"role": "system", "content": "Be brief"}


def test_a_developer_message_is_a_system_message() -> None:
    """What OpenAI's newer SDKs send (o1 and newer models), as the system message it
    replaces, which every OpenAI-compatible server knows."""
    body = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief"}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "developer", "content": "Now in French"},
            {"role": "user", "content": "Bye"},
        ]
    }
    assert chat(body, allow_system=True) == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "system", "content": "Now in French"},
        {"role": "user", "content": "Bye"},
    ]
    with pytest.raises(InvalidChat, match=r"messages\[0\] is a developer message: system and"):
        chat(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be an object"),
        ({}, 'Send "messages"'),
        ({"messages": []}, "non-empty list"),
        ({"messages": "hi"}, "non-empty list"),
        ({"messages": ["hi"]}, r"messages\[0\] must be an object"),
        ({"messages": [{"role": "robot", "content": "x"}]}, r"messages\[0\].role must be one of"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "not 'tool'"),
        (
            {"messages": [{"role": "Developer", "content": "x"}]},
            "one of system, developer, user, assistant, not 'Developer'",
        ),
        ({"messages": [{"role": ["user"], "content": "x"}]}, r"not \['user'\]"),
        ({"messages": [{"role": "user"}]}, "has no content"),
        ({"messages": [{"role": "user", "content": 3}]}, "must be a string"),
        ({"messages": [{"role": "user", "content": "a\x00b"}]}, "NUL"),
        ({"prompt": "hi \ud800"}, "prompt contains a lone UTF-16 surrogate"),
        (
            {"messages": [{"role": "user", "parts": [{"type": "text", "text": "\udfff"}]}]},
            r"messages\[0\].parts\[0\].text contains a lone UTF-16 surrogate",
        ),
        (
            {"messages": [{"role": "user", "parts": [{"type": "step-start"}]}]},
            r"messages\[0\].parts has no text part",
        ),
        ({"messages": [{"role": "user", "content": []}]}, r"messages\[0\].content has no text"),
        ({"messages": [{"role": "user", "parts": ["x"]}]}, "must be an object with a type"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "last message must be the user's"),
        ({"messages": [{"role": "user", "content": "  "}]}, "last message is empty"),
        ({"prompt": None}, "prompt must be a string"),
    ],
)
def test_bad_conversations_are_named(body: Any, message: str) -> None:
    with pytest.raises(InvalidChat, match=message):
        chat(body)


# What OpenAI's SDKs send for an image, audio or a file, next to the question's text.
NOT_TEXT = [
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    {"type": "file", "file": {"file_id": "file-abc123"}},
]


@pytest.mark.parametrize("part", NOT_TEXT, ids=lambda part: part["type"])
def test_a_part_the_model_would_not_see_is_refused_by_its_type(part: dict[str, Any]) -> None:
    """Dropped, it left the model answering "what is in this image?" without the image."""
    question = [{"type": "text", "text": "What is in this?"}, part]
    with pytest.raises(InvalidChat) as refused:
        chat({"messages": [{"role": "user", "content": question}]})
    assert str(refused.value) == (
        f"messages[0].content[1] has the type {part['type']!r}: only text parts can be sent "
        "to the model"
    )


def test_a_file_from_use_chat_is_refused_and_its_bookkeeping_left_out() -> None:
    with pytest.raises(InvalidChat, match=r"messages\[0\].parts\[1\] has the type 'file'"):
        chat({"messages": [{"role": "user", "parts": [
            {"type": "text", "text": "Read this"},
            {"type": "file", "mediaType": "application/pdf", "url": "data:application/pdf;base64,"},
        ]}]})  # fmt: skip
    answered = {"id": "m2", "role": "assistant", "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "text": "The user greets me."},
        {"type": "tool-weather", "toolCallId": "c1", "state": "output-available"},
        {"type": "source-url", "sourceId": "s1", "url": "https://example.com"},
        {"type": "text", "text": "Hello"},
    ]}  # fmt: skip
    hi, more = (
        {"role": "user", "parts": [{"type": "text", "text": text}]} for text in ("Hi", "More")
    )
    body = {"messages": [hi, answered, more]}
    assert [m["content"] for m in chat(body)] == ["Hi", "Hello", "More"]


def test_an_assistants_refusal_part_is_what_it_said() -> None:
    """OpenAI's assistant messages may carry the model's refusal as a part of its own."""
    refused = {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}
    body = {
        "messages": [
            {"role": "user", "content": "Hi"},
            refused,
            {"role": "user", "content": "Why?"},
        ]
    }
    assert chat(body)[1] == {"role": "assistant", "content": "I can't."}
    with pytest.raises(InvalidChat, match=r"messages\[0\].content\[0\] has the type 'refusal'"):
        chat({"messages": [{"role": "user", "content": [{"type": "refusal", "refusal": "x"}]}]})


def test_a_surrogate_pair_is_the_character_it_encodes() -> None:
    # json.dumps escapes the emoji as the pair "\ud83d\ude00".
    assert chat({"prompt": "hi \U0001f600"}) == [{"role": "user", "content": "hi \U0001f600"}]


def test_bad_bodies_are_named() -> None:
    factory = RequestFactory()
    with pytest.raises(InvalidChat, match="not valid JSON"):
        read_body(factory.post("/", "{nope", content_type="application/json"))
    with pytest.raises(InvalidChat, match="not text/plain"):
        read_body(factory.post("/", "hi", content_type="text/plain"))
    with pytest.raises(InvalidChat, match='Send "messages"'):
        read_chat(read_body(factory.post("/", {"question": "?"})))


@override_settings(
    DJANGO_SSE={
        "LLM_MAX_MESSAGES": 2,
        "LLM_MAX_MESSAGE_LENGTH": 10,
        "LLM_MAX_CONVERSATION_LENGTH": 15,
    }
)
def test_limits() -> None:
    user = {"role": "user", "content": "0123456789"}
    with pytest.raises(InvalidChat, match="Too many messages: 3, at most 2"):
        chat({"messages": [user, user, user]})
    with pytest.raises(InvalidChat, match="too long: 11 characters, at most 10"):
        chat({"prompt": "01234567890"})
    with pytest.raises(InvalidChat, match="conversation is too long: 20 characters, at most 15"):
        chat({"messages": [user, user]})


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_a_body_over_djangos_limit() -> None:
    request = RequestFactory().post(
        "/", json.dumps({"prompt": "x" * 200}), content_type="application/json"
    )
    with pytest.raises(InvalidChat, match="too large"):
        read_body(request)
