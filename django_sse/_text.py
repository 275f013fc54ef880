"""Text made safe to store and to send, whatever produced it."""

from __future__ import annotations

import re

__all__ = ["is_storable", "safe_text"]

# What UTF-8 cannot encode (lone surrogates, as text decoded with "surrogateescape"
# holds) and what PostgreSQL refuses in a text column (NUL).
_UNSAFE = re.compile("[\ud800-\udfff\x00]")


def safe_text(text: str) -> str:
    """``text`` with each character that cannot be stored or sent as UTF-8 replaced by
    U+FFFD, the replacement character: an exception's message or a client's data
    must not make the write that records it fail."""
    return _UNSAFE.sub("\ufffd", text)


def is_storable(text: str) -> bool:
    """Whether ``text`` can be stored and sent as it is (see safe_text())."""
    return _UNSAFE.search(text) is None
