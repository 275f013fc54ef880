"""Credentials hidden from the text a StreamLog row keeps: its path, query string, error
and user agent.

EventSource cannot send headers, so clients put tokens in stream URLs, exceptions quote
URLs and settings, and some clients put their key in their User-Agent. A parameter's
value is replaced by ``***`` when its NAME contains one of the fragments below
(case-insensitive: ``KEY`` hides ``api_key``, ``X-Api-Key`` and ``monkey``, as Django's
own SafeExceptionReporterFilter does), or one of the REDACTED_NAMES setting's. So are
``Bearer`` credentials, the userinfo of URLs (``scheme://user:password@``) and
JWT-shaped strings, whatever their name. In free text, ``name => value`` and
``<name>value</name>`` count as parameters too.

A safety net, not a guarantee: a secret without a telling name (``/stream/<token>/``)
is stored as it came.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import quote, unquote_plus

from django_sse import conf

__all__ = ["BUILTIN_NAMES", "MARKER", "redact_path", "redact_query", "redact_text"]

# Django's SafeExceptionReporterFilter hides settings named API|AUTH|TOKEN|KEY|SECRET|
# PASS|SIGNATURE|HTTP_COOKIE; URLs add sessions, JWTs, OAuth codes, signatures
# (sig=), abbreviated passwords (pwd=) and cloud credentials (X-Amz-Credential).
BUILTIN_NAMES: tuple[str, ...] = (
    "API",
    "TOKEN",
    "KEY",
    "SECRET",
    "PASS",
    "PWD",
    "SIGNATURE",
    "SIG",
    "AUTH",
    "SESSION",
    "JWT",
    "CODE",
    "COOKIE",
    "CREDENTIAL",
)
MARKER = "***"

# Credential schemes a sensitive name's value may start with: "Authorization: Bearer x".
_SCHEMES = r"(?:bearer|basic|digest|token)\s+\S+"
# The userinfo of a URL (postgres://app:pw@db, https://ghp_token@github.com), up to the
# authority's last "@", as urllib.parse reads it: a password may hold a raw "@".
_USERINFO = r"(?P<userinfo>(?<=://)[^/?#\s]+@)"
# A bearer credential anywhere, and anything shaped like a JWT (base64url of '{"').
_BEARER = r"(?P<scheme>(?<![\w-])bearer)\s+\S+"
_JWT = r"(?P<jwt>(?<![\w-])eyJ[\w-]*\.[\w-]+\.[\w-]*)"
# An XML element's text, in free text only: <token>x</token>, <api-key id="1">x</api-key>.
_ELEMENT_NAME = r"[\w.:-]"

# In free text a name is a run of word characters, ".", "-", "[", "]" and
# percent-encoded characters (api%5Fkey). Encoded separators end it: quoted URLs
# (request.get_full_path() encodes ";" and "=" in a path) are read as their decoded
# form would be. A name may only start where another does not go on, so the scan
# stays linear in the text's length.
_ENCODED_BREAK = r"%(?:3d|3a|26|2f|3f|3b|2c|20|23|22|27)"  # = : & / ? ; , space # " '
_TEXT_NAME_CHAR = rf"(?:[\w.\[\]-]|%(?!{_ENCODED_BREAK[1:]})[0-9a-f]{{2}})"
_TEXT_NAME_START = rf"(?:(?<![\w.\[\]%-])|(?<={_ENCODED_BREAK})|(?<=%)(?![0-9a-f]{{2}}))"
_TEXT_SEPARATOR = r"""["']?\s*(?:=>?|%3d(?:%3e)?|:(?!//|%2f%2f)|%3a(?!%2f%2f))\s*"""
_TEXT_VALUE = rf"""{_SCHEMES}|"[^"]*"?|'[^']*'?|[^\s&,;]+"""
# In a (decoded) path, names and values are what lies between "/", ";" and "&":
# /stream/token=abc/, /stream;jsessionid=abc/, /stream/auth:abc/.
_PATH_NAME_CHAR = r"[^/;=:&?#\s]"
_PATH_NAME_START = r"(?<![^/;=:&?#\s])"
_PATH_SEPARATOR = r"=|:(?!//)"
_PATH_VALUE = r"[^/;]+"
# Characters a query value redacted after decoding keeps as they are, for reading.
_READABLE = "!$'()*+,/:;=?@[]~"


class _Patterns(NamedTuple):
    name: re.Pattern[str]
    text: re.Pattern[str]
    path: re.Pattern[str]


def redact_text(text: str) -> str:
    """``text`` (an error message) with credential-looking values replaced by ``***``."""
    return _hide(_patterns(_extra_names()).text, text)


def redact_path(path: str) -> str:
    """``path`` with the values of sensitive ``name=value``, ``name:value`` and
    ``;name=value`` parameters in its segments replaced by ``***``."""
    return _hide(_patterns(_extra_names()).path, path)


def redact_query(query: str) -> str:
    """``query`` with each sensitive parameter's value replaced by ``***``.

    Names are compared decoded (``to%6Ben`` is ``token``). Any other value is decoded
    and redacted as text (a URL in ``next=`` may carry a ``code=``); one that had
    something hidden is stored re-encoded, the rest as they came.
    """
    patterns = _patterns(_extra_names())
    return "&".join(_redact_parameter(part, patterns) for part in query.split("&"))


def _redact_parameter(part: str, patterns: _Patterns) -> str:
    name, equals, value = part.partition("=")
    if equals and value and patterns.name.search(unquote_plus(name)):
        return f"{name}={MARKER}"
    raw = value if equals else name
    decoded = unquote_plus(raw)
    cleaned = _hide(patterns.text, decoded)
    if cleaned == decoded:
        return part
    readable = quote(cleaned, safe=_READABLE)
    return f"{name}={readable}" if equals else readable


def _hide(pattern: re.Pattern[str], text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["userinfo"]:
            return f"{MARKER}@"
        if match["name"]:
            return f"{match['name']}{match['sep']}{MARKER}"
        # Only the text pattern has the element branch.
        element = match.groupdict().get("element")
        if element:
            return f"{element}{MARKER}"
        if match["scheme"]:
            return f"{match['scheme']} {MARKER}"
        return MARKER

    return pattern.sub(replace, text)


def _extra_names() -> tuple[str, ...]:
    return tuple(conf.get("REDACTED_NAMES"))


@functools.lru_cache(maxsize=16)
def _patterns(extra_names: tuple[str, ...]) -> _Patterns:
    """The patterns for the built-in names and ``extra_names``, compiled once per value."""
    names = sorted({*BUILTIN_NAMES, *extra_names}, key=len, reverse=True)
    fragment = "|".join(re.escape(name) for name in names)

    # The lookahead finds a fragment before the name is read, so only a sensitive
    # name's value is taken, and a harmless one's is left to the other branches.
    def compile_(start: str, char: str, separator: str, value: str, *more: str) -> re.Pattern[str]:
        sensitive = (
            rf"{start}(?={char}*?(?:{fragment}))(?P<name>{char}+)"
            rf"(?P<sep>{separator})(?P<value>{value})"
        )
        branches = [_USERINFO, sensitive, *more, _BEARER, _JWT]
        return re.compile("|".join(branches), re.IGNORECASE)

    # The element's text up to the next tag; its closing tag stays, for reading.
    element = (
        rf"(?P<element><(?={_ELEMENT_NAME}*?(?:{fragment})){_ELEMENT_NAME}+(?:\s[^<>]*)?>)"
        r"[^<]+"
    )
    return _Patterns(
        name=re.compile(fragment, re.IGNORECASE),
        text=compile_(_TEXT_NAME_START, _TEXT_NAME_CHAR, _TEXT_SEPARATOR, _TEXT_VALUE, element),
        path=compile_(_PATH_NAME_START, _PATH_NAME_CHAR, _PATH_SEPARATOR, _PATH_VALUE),
    )
