"""safe_text(): text that any database stores and UTF-8 encodes."""

from __future__ import annotations

import pytest

from django_sse._text import safe_text


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("plain, ünïcödé and 🎉", "plain, ünïcödé and 🎉"),
        (b"\xff\xfe".decode("utf-8", "surrogateescape"), "\ufffd\ufffd"),
        ("\ud83d\ude00", "\ufffd\ufffd"),  # a surrogate pair in a str is two lone ones
        ("a\x00b", "a\ufffdb"),
    ],
)
def test_what_utf8_or_a_database_refuses_becomes_replacement_characters(
    text: str, safe: str
) -> None:
    assert safe_text(text) == safe
    safe_text(text).encode("utf-8")
