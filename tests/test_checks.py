from __future__ import annotations

from django.core import checks
from django.test import override_settings

from django_sse.checks import GZIP_MIDDLEWARE, check_deployment


def ids() -> list[str | None]:
    return [message.id for message in check_deployment()]


def test_quiet_on_a_good_configuration() -> None:
    with override_settings(MIDDLEWARE=[]):
        assert ids() == []


@override_settings(ASGI_APPLICATION=None, MIDDLEWARE=[])
def test_warns_without_asgi_application() -> None:
    (message,) = check_deployment()
    assert message.id == "django_sse.W001"
    assert message.level == checks.WARNING
    assert "daphne or uvicorn" in str(message.hint)


@override_settings(MIDDLEWARE=[GZIP_MIDDLEWARE])
def test_reports_gzip_and_that_streams_are_exempt() -> None:
    (message,) = check_deployment()
    assert message.id == "django_sse.I001"
    assert "exempt" in message.msg


def test_warns_when_daphne_comes_after_staticfiles() -> None:
    apps = ["django.contrib.staticfiles", "daphne", "django_sse"]
    with override_settings(INSTALLED_APPS=apps, MIDDLEWARE=[]):
        assert ids() == ["django_sse.W002"]
    with override_settings(INSTALLED_APPS=list(reversed(apps)), MIDDLEWARE=[]):
        assert ids() == []


def test_checks_are_registered() -> None:
    with override_settings(ASGI_APPLICATION=None):
        found = checks.run_checks(tags=[checks.Tags.compatibility])
    assert "django_sse.W001" in [message.id for message in found]
