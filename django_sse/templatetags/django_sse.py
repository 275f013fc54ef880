"""``{% load django_sse %}``: wire page elements to event streams without writing JavaScript.

``{% sse_script %}`` includes the helper (static/django_sse/sse.js) once per page.
``{% sse_connect %}`` and ``{% sse_listen %}`` render ``data-sse-*`` attributes that the
helper reads; every value goes through Django's attribute escaping, so nothing a template
passes can close the attribute or start markup.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import template
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.middleware.csrf import get_token
from django.template.base import FilterExpression, Parser, Token
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

SWAPS = ("text", "append", "html", "append-html")
METHODS = ("get", "post", "put", "patch", "delete")

# Options of an element that handles events; sse_connect takes these and the next ones.
LISTEN_OPTIONS = ("on", "swap", "target", "format", "keep")
CONNECT_OPTIONS = (
    *LISTEN_OPTIONS,
    "json",
    "close_on",
    "events",
    "method",
    "body",
    "headers",
    "with_credentials",
    "pause_hidden",
    "retry",
    "transport",
)

# Marks, for the whole render of one page, that the helper's <script> is already out.
_SCRIPT_INCLUDED = "django_sse.script_included"


@register.simple_tag(takes_context=True)
def sse_script(context: template.Context) -> str:
    """The helper's ``<script defer>``, with the request's CSP nonce; empty if already included."""
    # render_context's first layer lives as long as the page's render, across
    # {% extends %} and {% include %}; the layers above it are per template.
    page = context.render_context.dicts[0]
    if _SCRIPT_INCLUDED in page:
        return ""
    page[_SCRIPT_INCLUDED] = "yes"
    nonce = _csp_nonce(context)
    src = static("django_sse/sse.js")
    if nonce:
        return format_html('<script src="{}" defer nonce="{}"></script>', src, nonce)
    return format_html('<script src="{}" defer></script>', src)


def _csp_nonce(context: template.Context) -> str:
    # Django 6's csp context processor provides csp_nonce; django-csp sets request.csp_nonce.
    nonce = context.get("csp_nonce")
    if not nonce:
        nonce = getattr(context.get("request"), "csp_nonce", None)
    return str(nonce) if nonce else ""


@register.tag
def sse_connect(parser: Parser, token: Token) -> SSEAttributesNode:
    """``{% sse_connect "app:stream" arg kwarg=v swap="text" ... %}``: a stream's attributes.

    The first argument is a URL name, reversed with the positional arguments and any
    keyword that is not an option (like ``{% url %}``), or a path starting with "/" or
    a full http(s) URL.
    """
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError(f"{bits[0]} needs a URL name or a path")
    url = parser.compile_filter(bits[1])
    args, options, url_kwargs = _parse_arguments(parser, bits[0], bits[2:], CONNECT_OPTIONS)
    return SSEAttributesNode(url, args, url_kwargs, options)


@register.tag
def sse_listen(parser: Parser, token: Token) -> SSEAttributesNode:
    """``{% sse_listen on="tick" swap="text" %}``: handle events of the enclosing connection."""
    bits = token.split_contents()
    args, options, url_kwargs = _parse_arguments(parser, bits[0], bits[1:], LISTEN_OPTIONS)
    if args or url_kwargs:
        raise template.TemplateSyntaxError(
            f"{bits[0]} takes only the options {', '.join(LISTEN_OPTIONS)}"
        )
    return SSEAttributesNode(None, [], {}, options)


def _parse_arguments(
    parser: Parser, tag: str, bits: list[str], known: tuple[str, ...]
) -> tuple[list[FilterExpression], dict[str, FilterExpression], dict[str, FilterExpression]]:
    args: list[FilterExpression] = []
    options: dict[str, FilterExpression] = {}
    url_kwargs: dict[str, FilterExpression] = {}
    for bit in bits:
        name, equals, value = bit.partition("=")
        option = name.replace("-", "_")
        if equals and option != name and option in known:
            # The attribute's spelling (close-on=): Django would only say it cannot parse it.
            raise template.TemplateSyntaxError(f"{tag}: write {option}=, not {name}=")
        if not equals or not name.isidentifier():
            if options or url_kwargs:
                raise template.TemplateSyntaxError(
                    f"{tag}: positional argument {bit!r} after keyword arguments"
                )
            args.append(parser.compile_filter(bit))
            continue
        given = options if name in known else url_kwargs
        if name in given:
            raise template.TemplateSyntaxError(f"{tag}: {name!r} given twice")
        given[name] = parser.compile_filter(value)
    return args, options, url_kwargs


class SSEAttributesNode(template.Node):
    def __init__(
        self,
        url: FilterExpression | None,
        args: list[FilterExpression],
        url_kwargs: dict[str, FilterExpression],
        options: dict[str, FilterExpression],
    ) -> None:
        self.url = url
        self.args = args
        self.url_kwargs = url_kwargs
        self.options = options

    def render(self, context: template.Context) -> SafeString:
        # An option whose value is None is left out, so templates can pass one conditionally.
        options = {
            name: value
            for name, value in (
                (name, expression.resolve(context)) for name, expression in self.options.items()
            )
            if value is not None
        }
        attributes: dict[str, str | None] = {}
        if self.url is not None:
            attributes["url"] = self._url(context)
        for name, value in options.items():
            attributes.update(_option(name, value))
        if self.url is None and not attributes:
            # A bare sse_listen: the defaults, written out so that the helper finds it.
            attributes["on"] = "message"
        if (options.get("method") or "get").lower() != "get":
            attributes.update(_csrf(context))
        elif "body" in options:
            raise template.TemplateSyntaxError(
                "sse_connect: a body is sent only with method post, put, patch or delete"
            )
        # escape(), not format_html: template string literals count as safe, and even a
        # "safe" value must not end the attribute.
        return mark_safe(
            "".join(
                f" data-sse-{name.replace('_', '-')}"
                + ("" if value is None else f'="{escape(value)}"')
                for name, value in attributes.items()
            )
        )

    def _url(self, context: template.Context) -> str:
        assert self.url is not None
        resolved = self.url.resolve(context)
        if resolved is None or resolved == "":
            # Rather than reverse()'s "Reverse for '' not found".
            raise template.TemplateSyntaxError(
                f"sse_connect: {self.url.token} is {resolved!r}, not a URL name or a path"
            )
        target = str(resolved)
        if target.startswith(("/", "http://", "https://")):
            if self.url_kwargs:
                # Most likely a misspelt option, which would otherwise go to the URL.
                raise template.TemplateSyntaxError(
                    f"sse_connect: {', '.join(self.url_kwargs)} is not an option "
                    f"({', '.join(CONNECT_OPTIONS)}), and the path {target!r} takes no "
                    "URL arguments"
                )
            if self.args:
                raise template.TemplateSyntaxError(
                    f"sse_connect: URL arguments go with a URL name, not with the path {target!r}"
                )
            return target
        return reverse(
            target,
            args=[arg.resolve(context) for arg in self.args],
            kwargs={name: value.resolve(context) for name, value in self.url_kwargs.items()},
        )


def _option(name: str, value: Any) -> dict[str, str | None]:
    """The attribute(s) for one option: None means a bare (true) attribute."""
    if name in ("json", "with_credentials", "pause_hidden"):
        return {name: None} if value else {}
    if name == "headers":
        _check_headers(value)
    if name in ("body", "headers"):
        try:
            # allow_nan=False: NaN and Infinity are not JSON, and other servers refuse them.
            return {name: json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False)}
        except (TypeError, ValueError) as error:
            raise template.TemplateSyntaxError(
                f"sse_connect: {name} must be JSON-serializable: {error}"
            ) from error
    if name in ("keep", "retry"):
        text = str(value)
        if isinstance(value, bool) or not (text.isascii() and text.isdigit()):
            raise template.TemplateSyntaxError(
                f"sse_connect: {name} must be a non-negative integer, got {value!r}"
            )
        return {name: text}
    text = str(value)
    if name == "swap" and text not in SWAPS:
        raise template.TemplateSyntaxError(f"sse swap={text!r} is not one of {', '.join(SWAPS)}")
    if name == "method" and text.lower() not in METHODS:
        raise template.TemplateSyntaxError(
            f"sse_connect: method={text!r} is not one of {', '.join(METHODS)}"
        )
    if name == "transport" and text != "fetch":
        raise template.TemplateSyntaxError('sse_connect: transport can only be "fetch"')
    return {name: text}


# RFC 9110's token: what a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_headers(value: Any) -> None:
    """Headers a browser's fetch() can send: otherwise every attempt fails on the page."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise template.TemplateSyntaxError("sse_connect: headers must be a dict of strings")
    for header, text in value.items():
        if not isinstance(header, str) or not _TOKEN.fullmatch(header):
            raise template.TemplateSyntaxError(
                f"sse_connect: headers: {header!r} is not a valid header name"
            )
        if any(character in text for character in "\r\n\0") or not text.isascii():
            raise template.TemplateSyntaxError(
                f"sse_connect: headers: the value of {header} must be ASCII without line "
                f"breaks or NUL, got {text!r}"
            )


def _csrf(context: template.Context) -> dict[str, str | None]:
    """The CSRF token a POST stream sends, the cookie that holds it, and the header name
    if the project changed it. The names come from the settings: without the request (no
    request context processor) there is no token to write, and the helper reads it from
    that cookie."""
    attributes: dict[str, str | None] = {}
    request = context.get("request")
    if request is not None:
        attributes["csrf_token"] = get_token(request)
    if not (settings.CSRF_COOKIE_HTTPONLY or settings.CSRF_USE_SESSIONS):
        # The helper watches this cookie for a token Django rotates while the page stays
        # (a login through fetch()). Left out where no page script can read the token: the
        # helper then sends the rendered one, whatever cookies a script can see.
        attributes["csrf_cookie"] = settings.CSRF_COOKIE_NAME
    header = settings.CSRF_HEADER_NAME
    if header != "HTTP_X_CSRFTOKEN":
        attributes["csrf_header"] = header.removeprefix("HTTP_").replace("_", "-")
    return attributes
