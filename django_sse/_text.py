"""Text made safe to store and to send, whatever produced it."""

from __future__ import annotations

import re

__all__ = ["safe_text", "unstorable"]

# What UTF-8 cannot encode (lone surrogates, as text decoded with "surrogateescape"
# holds) and what PostgreSQL refuses in a text column (NUL).
_UNSAFE = re.compile("[\ud800-\udfff\x00]")


def safe_text(text: str) -> str:
    """``text`` with each character that cannot be stored or sent as UTF-8 replaced by
    U+FFFD, the replacement character: an exception's message or a client's data
    must not make the write that records it fail."""
    return _UNSAFE.sub("\ufffd", text)


def unstorable(text: str) -> str | None:
    """What in ``text`` cannot be stored or sent as it is (see safe_text()), said so
    that a client can find it; None if nothing."""
    found = _UNSAFE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "a NUL character"
    # JSON may escape half of a UTF-16 pair ("\ud800") on its own: it decodes to a
    # surrogate that no UTF-8 encoder takes.
    return f"a lone UTF-16 surrogate (U+{ord(found.group()):04X}), which is not text"
