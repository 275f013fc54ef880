"""Issue 26, part 3: credentials in stream URLs and error messages never reach StreamLog rows.

EventSource cannot send headers, so tokens travel in query strings (and paths), and the
admin shows every row to any staff user who can view stream logs. Each test here tries
to get a secret past django_sse._redaction in a query string, a path or an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from django_sse import _redaction, tracking
from django_sse._redaction import BUILTIN_NAMES, redact_path, redact_query, redact_text
from django_sse.tracking import describe_error, redact

S = "Zq7-s3cr3t"  # a value no test input holds anywhere else


def spellings(fragment: str) -> list[str]:
    """``fragment`` as parameter names really spell it: any case, inside a longer name,
    joined with "-", "_" or "."."""
    low = fragment.lower()
    return [
        low,
        fragment.upper(),
        fragment.capitalize(),
        f"my{low}s",
        f"x-{low}",
        f"X-{fragment.capitalize()}-Id",
        f"{low}_id",
        f"v2.{low}.value",
    ]


NAMES = [name for fragment in BUILTIN_NAMES for name in spellings(fragment)]
# Names seen in real stream URLs, each hidden by a fragment inside it.
REAL_NAMES = [
    "access_token",
    "client_secret",
    "X-Api-Key",
    "apikey",
    "sessionid",
    "jsessionid",
    "auth_code",
    "code",
    "oauth_signature",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "sig",
    "passphrase",
    "password",
    "pwd",
    "my_jwt",
    "key",
    "csrftoken",
]
ALL_NAMES = NAMES + REAL_NAMES


def test_the_default_list_is_at_least_djangos() -> None:
    # django.views.debug.SafeExceptionReporterFilter.hidden_settings (HTTP_COOKIE as COOKIE)
    djangos = {"API", "AUTH", "TOKEN", "KEY", "SECRET", "PASS", "SIGNATURE", "COOKIE"}
    assert djangos | {"SESSION", "JWT", "CODE", "SIG"} <= set(BUILTIN_NAMES)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_each_name_is_hidden_in_a_query_string(name: str) -> None:
    assert redact_query(f"n=1&{name}={S}&m=2") == f"n=1&{name}=***&m=2"
    assert redact_query(f"{name}={S}") == f"{name}=***"


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize(
    ("path", "stored"),
    [
        ("/s/{name}={S}/x/", "/s/{name}=***/x/"),
        ("/s/{name}:{S}/x/", "/s/{name}:***/x/"),
        ("/s;{name}={S};page=2/x", "/s;{name}=***;page=2/x"),
        ("/s/x;{name}={S}", "/s/x;{name}=***"),
        ("/s/a=1&{name}={S}/x", "/s/a=1&{name}=***/x"),
    ],
)
def test_each_name_is_hidden_in_a_path(name: str, path: str, stored: str) -> None:
    assert redact_path(path.format(name=name, S=S)) == stored.format(name=name)


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize(
    ("message", "stored"),
    [
        ("refused {name}={S} for user 7", "refused {name}=*** for user 7"),
        ("refused {name}: {S}, retry", "refused {name}: ***, retry"),
        ("refused {name} = {S}", "refused {name} = ***"),
        ("bad {{'{name}': '{S}', 'page': 2}}", "bad {{'{name}': ***, 'page': 2}}"),
        ('bad {{"{name}": "{S} two", "page": 2}}', 'bad {{"{name}": ***, "page": 2}}'),
        ("GET /feed?page=2&{name}={S}&n=1 failed", "GET /feed?page=2&{name}=***&n=1 failed"),
        ("ended with {name}={S}", "ended with {name}=***"),
    ],
)
def test_each_name_is_hidden_in_an_error_message(name: str, message: str, stored: str) -> None:
    assert redact_text(message.format(name=name, S=S)) == stored.format(name=name)


@pytest.mark.parametrize(
    ("query", "stored"),
    [
        # Values holding "=" (base64 padding, nested pairs) are hidden whole.
        (f"sig={S}==&n=1", "sig=***&n=1"),
        (f"token=a={S}=b&n=1", "token=***&n=1"),
        # Names are compared decoded.
        (f"api%5Fkey={S}", "api%5Fkey=***"),
        (f"to%6Ben={S}", "to%6Ben=***"),
        (f"%41UTH={S}&n=1", "%41UTH=***&n=1"),
        (f"api+key={S}", "api+key=***"),
        (f"user%5Bpassword%5D={S}", "user%5Bpassword%5D=***"),
        (f"auth[token]={S}", "auth[token]=***"),
        # Encoded values, whatever they decode to.
        (f"token={S}%26more%3Dstuff&n=1", "token=***&n=1"),
        # Every repetition of a parameter.
        (f"token=1{S}&n=1&token=2{S}&TOKEN=3{S}", "token=***&n=1&token=***&TOKEN=***"),
        # Nothing to hide: an empty value, a name alone, the list's names as values.
        ("token=&n=1", "token=&n=1"),
        ("token&n=1", "token&n=1"),
        ("", ""),
        ("q=token&field=password", "q=token&field=password"),
        # ";" as a separator (old servers split on it; Django does not).
        (f"a=1;token={S};b=2", "a=1;token=***;b=2"),
        # A URL in a value, encoded, carrying an OAuth code.
        (
            f"next=https%3A%2F%2Fapp.example%2Fcb%3Fcode%3D{S}%26state%3D1&n=1",
            "next=https://app.example/cb?code=***%26state=1&n=1",
        ),
        (f"h=Bearer%20{S}", "h=Bearer%20***"),
        (f"db=postgres%3A%2F%2Fapp%3A{S}%40db%2Fx", "db=postgres://***@db/x"),
        (f"db=postgres%3A%2F%2Fapp%3Ap%40{S}%40db%2Fx", "db=postgres://***@db/x"),
    ],
)
def test_query_strings_that_try_to_slip_through(query: str, stored: str) -> None:
    assert redact_query(query) == stored


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        (f"/s;sig={S}==;n=1/x", "/s;sig=***;n=1/x"),
        (f"/feed;jsessionid={S}/items;page=2", "/feed;jsessionid=***/items;page=2"),
        (f"/feed;a=1;b=2;auth={S}", "/feed;a=1;b=2;auth=***"),
        (f"/s/token={S}/token={S}2/", "/s/token=***/token=***/"),
        ("/s;token=/x", "/s;token=/x"),
        ("/token/x/", "/token/x/"),
        (f"/proxy/https://app:{S}@db/x", "/proxy/https://***@db/x"),
        (f"/proxy/https://app:p@{S}@db/x", "/proxy/https://***@db/x"),
        (f"/s/Bearer {S}", "/s/Bearer ***"),
        ("/s/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl/x", "/s/***/x"),
        ("/feeds/42/items;page=2/", "/feeds/42/items;page=2/"),
    ],
)
def test_paths_that_try_to_slip_through(path: str, stored: str) -> None:
    assert redact_path(path) == stored


@pytest.mark.parametrize(
    ("message", "stored"),
    [
        # Quoted values, whole, whatever they hold; an unquoted one up to a separator.
        (f'secret="{S} & more; =x" leaked', "secret=*** leaked"),
        (f"password='{S}, two' rejected", "password=*** rejected"),
        (f'token="{S} never closed', "token=***"),
        (f"sig={S}== rejected", "sig=*** rejected"),
        (f"api%5Fkey={S} rejected", "api%5Fkey=*** rejected"),
        # Credential schemes after a name, and a bearer token anywhere.
        (f"Authorization: Bearer {S} rejected", "Authorization: *** rejected"),
        (f"Authorization: Basic {S}", "Authorization: ***"),
        (f"auth: Token {S}", "auth: ***"),
        (f"sent bearer {S} upstream", "sent bearer *** upstream"),
        # A URL's userinfo, with or without a password.
        (f"postgres://app:{S}@db/x down", "postgres://***@db/x down"),
        (f"clone https://{S}@github.com/o/r failed", "clone https://***@github.com/o/r failed"),
        (f"dsn=postgres://app:{S}@db/x", "dsn=postgres://***@db/x"),
        # A password with a raw "@", which urllib.parse and database drivers accept.
        (f"postgres://app:p@{S}@db/x down", "postgres://***@db/x down"),
        (f"redis://:{S}@@cache:6379/0 refused", "redis://***@cache:6379/0 refused"),
        (
            "see https://example.com/x or mail admin@example.com",
            "see https://example.com/x or mail admin@example.com",
        ),
        # A URL as request.get_full_path() quotes it: ";" and "=" in the path encoded.
        (f"refused /feed%3Bsessionid%3D{S}/x", "refused /feed%3Bsessionid%3D***"),
        (f"go to https%3A%2F%2Fa%2Fcb%3Fcode%3D{S}", "go to https%3A%2F%2Fa%2Fcb%3Fcode%3D***"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln here", "jwt *** here"),
        # Ruby's and PHP's "=>", and XML elements, with or without attributes.
        (f"{{:token => {S}}} sent", "{:token => *** sent"),
        (f"{{'api_key' => '{S}'}}", "{'api_key' => ***}"),
        (f"token%3D%3E{S} rejected", "token%3D%3E*** rejected"),
        (f"<token>{S}</token> rejected", "<token>***</token> rejected"),
        (f'<ApiKey id="1">{S} and more</ApiKey>', '<ApiKey id="1">***</ApiKey>'),
        (f"<ns:password>{S}</ns:password>", "<ns:password>***</ns:password>"),
        ("<token></token> and <token/> and </token>", "<token></token> and <token/> and </token>"),
        ("<channel>news</channel>", "<channel>news</channel>"),
        # Text without a credential's shape is left alone.
        ("secret detail", "secret detail"),
        ("Session expired; log in again", "Session expired; log in again"),
        ("the key is missing", "the key is missing"),
        ("no such room: 42", "no such room: 42"),
        ("see https://example.com:8443/x", "see https://example.com:8443/x"),
    ],
)
def test_error_messages_that_try_to_slip_through(message: str, stored: str) -> None:
    assert redact_text(message) == stored


@pytest.mark.parametrize(
    ("query", "stored"),
    [
        (f"q=%3Ctoken%3E{S}%3C%2Ftoken%3E", "q=%3Ctoken%3E***%3C/token%3E"),
        (f"q=token%20%3D%3E%20{S}", "q=token%20=%3E%20***"),
        (f'q={{"token":"{S}"}}', "q=%7B%22token%22:***%7D"),
        (f"q=%7B%22token%22%3A%20%22{S}%22%7D", "q=%7B%22token%22:%20***%7D"),
    ],
)
def test_secrets_in_a_harmless_parameters_value(query: str, stored: str) -> None:
    """A value's text is redacted as an error's is: JSON, XML, Ruby hashes in ``?q=``."""
    assert redact_query(query) == stored


def test_over_redaction_is_accepted_as_django_accepts_it() -> None:
    assert redact_query("zipcode=75001&monkey=1") == "zipcode=***&monkey=***"


def test_the_public_names_in_tracking_redact_the_same() -> None:
    message = f"client_secret={S} and X-Api-Key: {S}"
    assert redact(message) == redact_text(message) == "client_secret=*** and X-Api-Key: ***"
    assert describe_error(PermissionError(message)) == f"PermissionError: {redact(message)}"


def test_a_huge_error_message_is_cut_before_it_is_scanned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream's close describes its error on the event loop."""
    scanned: list[int] = []

    def measured(text: str) -> str:
        scanned.append(len(text))
        return redact_text(text)

    monkeypatch.setattr(tracking, "redact_text", measured)
    described = describe_error(ValueError(f"token={S} " * 1_000_000))
    assert len(described) == 1000
    assert S not in described
    assert scanned == [4000]


names = st.sampled_from(ALL_NAMES)


@given(name=names, value=st.text(min_size=1).map(lambda text: f"Zq{text}"))
def test_no_value_survives_in_a_query_string(name: str, value: str) -> None:
    # Encoded as a browser would, and as it came (anything but "&").
    encoded = quote(value, safe="")
    assert encoded not in redact_query(f"n=1&{quote(name)}={encoded}&m=2")
    raw = value.replace("&", "")
    assert raw not in redact_query(f"n=1&{name}={raw}&m=2")


@given(name=names, value=st.from_regex(r"Zq[^\s&,;/'\"]+", fullmatch=True))
def test_no_value_survives_in_an_error_message_or_a_path(name: str, value: str) -> None:
    assert value not in redact_text(f"failed: {name}={value} then")
    assert value not in redact_path(f"/s;{name}={value}/x")


@pytest.mark.parametrize(
    "redactor",
    [
        lambda: redact_query(f"otp={S}&pin_number={S}"),
        lambda: redact_path(f"/s;otp={S};pin_number={S}/"),
        lambda: redact_text(f"otp={S}, pin_number={S}"),
    ],
)
def test_redacted_names_extend_the_list(redactor: Callable[[], str]) -> None:
    assert S in redactor()
    with override_settings(DJANGO_SSE={"REDACTED_NAMES": ["OTP", "pin"]}):
        assert S not in redactor()
    with override_settings(DJANGO_SSE={"REDACTED_NAMES": ("otp",)}):
        assert redactor().count(S) == 1  # pin_number: the tuple does not name it


@pytest.mark.parametrize(
    "value",
    ["otp", ["otp", ""], ["  "], ["otp", 1], None, {"otp"}, [b"otp"]],
)
def test_redacted_names_must_be_a_list_of_names(value: Any) -> None:
    with (
        override_settings(DJANGO_SSE={"REDACTED_NAMES": value}),
        pytest.raises(ImproperlyConfigured, match=r"REDACTED_NAMES.*list or tuple"),
    ):
        redact_query("n=1")


def test_patterns_are_compiled_once_per_setting() -> None:
    _redaction._patterns.cache_clear()
    for _ in range(3):
        redact_query("n=1")
        redact_path("/s/")
        redact_text("x")
    assert _redaction._patterns.cache_info().misses == 1
    with override_settings(DJANGO_SSE={"REDACTED_NAMES": ["otp"]}):
        redact_text("x")
        redact_text("y")
    with override_settings(DJANGO_SSE={"REDACTED_NAMES": ("otp",)}):
        redact_text("x")  # the same value, as a tuple
    assert _redaction._patterns.cache_info().misses == 2
