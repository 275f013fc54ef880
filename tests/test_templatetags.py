"""The tags render escaped data-sse-* attributes and the helper's script tag."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory, override_settings
from django.urls import NoReverseMatch

HOSTILE = "\"'><script>alert(1)</script>&amp;"


def render(source: str, context: dict[str, Any] | None = None, **kwargs: Any) -> str:
    template = Template("{% load django_sse %}" + source)
    return template.render(Context({**(context or {}), **kwargs}))


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's parser would read them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def attributes(source: str, **context: Any) -> dict[str, str | None]:
    [(tag, attrs)] = Elements(render(f"<div{source}></div>", context)).found
    assert tag == "div"
    return attrs


class TestSseConnect:
    def test_reverses_a_url_name_with_args_and_kwargs_like_url(self) -> None:
        assert attributes('{% sse_connect "release" "abc" %}') == {"data-sse-url": "/release/abc/"}
        assert attributes('{% sse_connect "release" token=t %}', t="x y") == {
            "data-sse-url": "/release/x%20y/"
        }

    def test_takes_a_path_or_full_url_as_is(self) -> None:
        assert attributes('{% sse_connect "/idle/?a=1&b=2" %}')["data-sse-url"] == "/idle/?a=1&b=2"
        assert attributes("{% sse_connect u %}", u="https://example.com/s/")["data-sse-url"] == (
            "https://example.com/s/"
        )

    def test_an_unknown_url_name_raises(self) -> None:
        with pytest.raises(NoReverseMatch):
            render('<div{% sse_connect "no-such-view" %}></div>')

    def test_renders_each_option_as_its_attribute(self) -> None:
        attrs = attributes(
            '{% sse_connect "/s/" on="tick done" swap="append-html" target="#log"'
            ' format="<li>{n}</li>" keep=50 json=True close_on="done" events="note"'
            ' with_credentials=True pause_hidden=True retry=2000 transport="fetch" headers=h %}',
            h={"X-Room": "1"},
        )
        assert attrs == {
            "data-sse-url": "/s/",
            "data-sse-on": "tick done",
            "data-sse-swap": "append-html",
            "data-sse-target": "#log",
            "data-sse-format": "<li>{n}</li>",
            "data-sse-keep": "50",
            "data-sse-json": None,
            "data-sse-close-on": "done",
            "data-sse-events": "note",
            "data-sse-with-credentials": None,
            "data-sse-pause-hidden": None,
            "data-sse-retry": "2000",
            "data-sse-transport": "fetch",
            "data-sse-headers": '{"X-Room": "1"}',
        }

    def test_false_flags_render_nothing(self) -> None:
        assert attributes('{% sse_connect "/s/" json=False pause_hidden=f %}', f=False) == {
            "data-sse-url": "/s/"
        }

    def test_options_that_are_none_are_left_out(self) -> None:
        assert attributes('{% sse_connect "/s/" transport=t swap=None %}', t=None) == {
            "data-sse-url": "/s/"
        }

    def test_a_body_is_json(self) -> None:
        attrs = attributes('{% sse_connect "/s/" method="post" body=b %}', b={"q": "</script>"})
        assert attrs["data-sse-body"] == '{"q": "</script>"}'

    def test_post_carries_the_csrf_token_when_the_request_is_known(self) -> None:
        request = RequestFactory().get("/")
        html = render('<div{% sse_connect "/s/" method="post" %}></div>', request=request)
        [(_, attrs)] = Elements(html).found
        assert len(attrs["data-sse-csrf-token"] or "") == 64
        assert "data-sse-csrf-header" not in attrs

    @override_settings(CSRF_HEADER_NAME="HTTP_X_MY_CSRF")
    def test_a_custom_csrf_header_name_is_passed_on(self) -> None:
        request = RequestFactory().get("/")
        html = render('<div{% sse_connect "/s/" method="POST" %}></div>', request=request)
        [(_, attrs)] = Elements(html).found
        assert attrs["data-sse-csrf-header"] == "X-MY-CSRF"

    @pytest.mark.parametrize(
        ("settings", "cookie"),
        [
            ({}, "csrftoken"),
            ({"CSRF_COOKIE_NAME": "XSRF-TOKEN"}, "XSRF-TOKEN"),
            # Escaped like any value: the attribute holds the name as the setting has it.
            ({"CSRF_COOKIE_NAME": HOSTILE}, HOSTILE),
            ({"CSRF_COOKIE_NAME": "XSRF-TOKEN", "CSRF_COOKIE_HTTPONLY": True}, None),
            ({"CSRF_COOKIE_NAME": "XSRF-TOKEN", "CSRF_USE_SESSIONS": True}, None),
        ],
    )
    def test_post_names_the_csrf_cookie_that_page_scripts_can_read(
        self, settings: dict[str, Any], cookie: str | None
    ) -> None:
        """The helper watches that cookie for a token Django rotates while the page stays;
        where no script can read the token, the tag names none."""
        with override_settings(**settings):
            html = render(
                '<div{% sse_connect "/s/" method="post" %}></div>',
                request=RequestFactory().get("/"),
            )
        [(_, attrs)] = Elements(html).found
        assert attrs.get("data-sse-csrf-cookie") == cookie
        assert len(attrs["data-sse-csrf-token"] or "") == 64
        assert "<script>" not in html

    @override_settings(CSRF_COOKIE_NAME="XSRF-TOKEN", CSRF_HEADER_NAME="HTTP_X_XSRF_TOKEN")
    def test_without_the_request_the_cookie_and_header_names_are_still_passed_on(self) -> None:
        """A template rendered without the request context processor has no token to
        write, and the helper reads it from the cookie: the project's cookie, sent in the
        project's header."""
        html = render('<div{% sse_connect "/s/" method="post" %}></div>')
        [(_, attrs)] = Elements(html).found
        assert "data-sse-csrf-token" not in attrs
        assert attrs["data-sse-csrf-cookie"] == "XSRF-TOKEN"
        assert attrs["data-sse-csrf-header"] == "X-XSRF-TOKEN"

    def test_get_streams_carry_no_token(self) -> None:
        html = render('<div{% sse_connect "/s/" %}></div>', request=RequestFactory().get("/"))
        assert "csrf" not in html

    @pytest.mark.parametrize(
        ("source", "attribute", "expected"),
        [
            (f'{{% sse_connect "/s/" {option}=h %}}', option.replace("_", "-"), HOSTILE)
            for option in ("target", "format", "on", "close_on", "events")
        ]
        + [
            ("{% sse_connect '/s/?q='|add:h %}", "url", "/s/?q=" + HOSTILE),
            ('{% sse_connect "/s/" method="post" body=h %}', "body", json.dumps(HOSTILE)),
        ],
    )
    def test_no_value_can_leave_its_attribute(
        self, source: str, attribute: str, expected: str
    ) -> None:
        html = render(f"<div{source}></div>", h=HOSTILE)
        [(_, attrs)] = Elements(html).found
        assert attrs[f"data-sse-{attribute}"] == expected
        assert "<script>" not in html

    def test_safe_strings_are_escaped_too(self) -> None:
        html = render("<div{% sse_connect '/s/' format='<b \"x\">' %}></div>")
        assert 'data-sse-format="&lt;b &quot;x&quot;&gt;"' in html

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ('{% sse_connect "/s/" swap="inner" %}', "is not one of text, append"),
            ('{% sse_connect "/s/" method="connect" %}', "is not one of get, post"),
            ('{% sse_connect "/s/" keep=-1 %}', "keep must be a non-negative integer"),
            ('{% sse_connect "/s/" retry="soon" %}', "retry must be a non-negative integer"),
            ('{% sse_connect "/s/" retry=True %}', "retry must be a non-negative integer"),
            ('{% sse_connect "/s/" transport="ws" %}', 'transport can only be "fetch"'),
            ('{% sse_connect "/s/" headers="X-A: 1" %}', "headers must be a dict of strings"),
            ('{% sse_connect "/s/" 1 %}', "URL arguments go with a URL name"),
        ],
    )
    def test_bad_options_raise_naming_the_problem(self, source: str, message: str) -> None:
        with pytest.raises(TemplateSyntaxError, match=message):
            render(f"<div{source}></div>")

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            # A misspelt option with a path: it is named, not taken for a URL argument.
            ('{% sse_connect "/s/" jsn=True %}', "jsn is not an option .*json"),
            # A body that a GET would never send.
            ('{% sse_connect "/s/" body=b %}', "a body is sent only with method post"),
            ('{% sse_connect "/s/" method="get" body=b %}', "a body is sent only with method"),
            # NaN is not JSON: other servers would refuse the body.
            ('{% sse_connect "/s/" method="post" body=nan %}', "body must be JSON-serializable"),
            # An undefined or None variable, rather than "Reverse for '' not found".
            ("{% sse_connect missing %}", "missing is '', not a URL name or a path"),
            ("{% sse_connect none %}", "none is None, not a URL name or a path"),
        ],
    )
    def test_mistakes_found_when_rendering_are_named(self, source: str, message: str) -> None:
        with pytest.raises(TemplateSyntaxError, match=message):
            render(f"<div{source}></div>", b={"q": 1}, nan=float("nan"), none=None)

    @pytest.mark.parametrize("option", ["close-on", "with-credentials", "pause-hidden"])
    def test_an_option_spelt_like_its_attribute_is_corrected(self, option: str) -> None:
        fixed = option.replace("-", "_")
        with pytest.raises(TemplateSyntaxError, match=f"write {fixed}=, not {option}="):
            Template("{% load django_sse %}{% sse_connect '/s/' json=True " + option + "=1 %}")

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("{% sse_connect %}", "needs a URL name or a path"),
            ('{% sse_connect "x" a=1 2 %}', "positional argument '2' after keyword"),
            ('{% sse_connect "x" swap="text" swap="html" %}', "'swap' given twice"),
        ],
    )
    def test_syntax_errors_are_reported_when_the_template_compiles(
        self, source: str, message: str
    ) -> None:
        with pytest.raises(TemplateSyntaxError, match=message):
            Template("{% load django_sse %}" + source)


class TestSseListen:
    def test_renders_only_listener_options(self) -> None:
        assert attributes('{% sse_listen on="tick" swap="text" format="#{n}" keep=3 %}') == {
            "data-sse-on": "tick",
            "data-sse-swap": "text",
            "data-sse-format": "#{n}",
            "data-sse-keep": "3",
        }

    @pytest.mark.parametrize("source", ['{% sse_listen "x" %}', "{% sse_listen json=True %}"])
    def test_takes_no_url_and_no_connection_options(self, source: str) -> None:
        with pytest.raises(TemplateSyntaxError, match="takes only the options"):
            Template("{% load django_sse %}" + source)


class TestSseScript:
    def test_includes_the_helper_deferred(self) -> None:
        assert (
            render("{% sse_script %}") == '<script src="/static/django_sse/sse.js" defer></script>'
        )

    def test_once_per_page_across_includes_and_blocks(self) -> None:
        html = render("{% sse_script %}{% include 'browser/blank.html' %}{% sse_script %}")
        assert html.count("django_sse/sse.js") == 1

    def test_each_render_is_a_new_page(self) -> None:
        template = Template("{% load django_sse %}{% sse_script %}")
        assert "sse.js" in template.render(Context())
        assert "sse.js" in template.render(Context())

    def test_carries_the_csp_nonce_escaped(self) -> None:
        html = render("{% sse_script %}", csp_nonce=HOSTILE)
        [(_, attrs)] = Elements(html).found
        assert attrs["nonce"] == HOSTILE

    def test_takes_django_csps_nonce_from_the_request(self) -> None:
        request = RequestFactory().get("/")
        request.csp_nonce = "abc123"  # type: ignore[attr-defined]
        assert 'nonce="abc123"' in render("{% sse_script %}", request=request)
