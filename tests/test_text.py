"""safe_text() and unstorable(): text that any database stores and UTF-8 encodes."""

from __future__ import annotations

import pytest

from django_sse._text import safe_text, unstorable


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


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plain, ünïcödé and 🎉", None),
        ("a\x00b", "a NUL character"),
        ("ok \udcff", "a lone UTF-16 surrogate (U+DCFF), which is not text"),
        ("\ud83d\ude00", "a lone UTF-16 surrogate (U+D83D), which is not text"),
    ],
)
def test_unstorable_names_the_first_character_that_cannot_be_kept(
    text: str, problem: str | None
) -> None:
    assert unstorable(text) == problem
