from __future__ import annotations

import sys

import pytest
from django.core import checks
from django.test import override_settings

from django_sse import checks as checks_module
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


def test_unknown_settings_keys_are_an_error_at_startup() -> None:
    with override_settings(DJANGO_SSE={"KEEPALIVE": 1}, MIDDLEWARE=[]):
        (message,) = check_deployment()
    assert message.id == "django_sse.E001"
    assert "KEEPALIVE" in message.msg


@pytest.mark.parametrize(
    ("configured", "named"),
    [({1: 5}, "1"), ({"KEEPALIVE": 1, ("KEEP_ALIVE",): 5}, "'KEEPALIVE', ('KEEP_ALIVE',)")],
)
def test_keys_that_are_not_names_are_an_error_not_a_crash(
    configured: dict[object, int], named: str
) -> None:
    """``DJANGO_SSE = {KEEP_ALIVE: 5}``, with KEEP_ALIVE a constant of the project's."""
    with override_settings(DJANGO_SSE=configured, MIDDLEWARE=[]):
        (message,) = check_deployment()
    assert message.id == "django_sse.E001"
    assert f"Unknown key(s) in settings.DJANGO_SSE: {named}. Known keys: " in message.msg


def test_django_42_needs_the_disconnect_watching_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checks_module, "DJANGO_WATCHES_DISCONNECTS", False)
    with override_settings(ASGI_APPLICATION="django.core.asgi.get_asgi_application", MIDDLEWARE=[]):
        assert ids() == ["django_sse.W003"]
    # tests.asgi builds its application with django_sse.asgi.get_asgi_application().
    monkeypatch.delitem(sys.modules, "tests.asgi", raising=False)
    with override_settings(ASGI_APPLICATION="tests.asgi.application", MIDDLEWARE=[]):
        assert ids() == []


@override_settings(DJANGO_SSE={"LLM_PROVIDER": "myproject.llm.Missing"})
def test_an_llm_provider_that_cannot_be_imported_is_an_error() -> None:
    (error,) = [m for m in check_deployment() if m.id == "django_sse.E003"]
    assert "'myproject.llm.Missing' cannot be imported" in error.msg


def test_an_openai_key_without_the_openai_package_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    (error,) = [m for m in check_deployment() if m.id == "django_sse.E003"]
    assert "the openai package is missing" in error.msg


@override_settings(DJANGO_SSE={"LLM_PROVIDER": "os.path"})
def test_an_llm_provider_that_is_not_a_class_is_an_error() -> None:
    (error,) = [m for m in check_deployment() if m.id == "django_sse.E003"]
    assert "'os.path' is a module, not a provider class" in error.msg


@override_settings(DJANGO_SSE={"LLM_PROVIDER": 123}, MIDDLEWARE=[])
def test_an_llm_provider_that_is_not_a_dotted_path_is_an_error() -> None:
    (error,) = check_deployment()
    assert error.id == "django_sse.E003"
    assert "it must be None or the dotted path of a provider class" in error.msg


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"CLEANUP_TIMEOUT": 0}, ["django_sse.E001"]),
        ({"STREAM_LIMIT_CACHE": ["default"], "STREAM_LIMIT_PER_USER": 1}, ["django_sse.E001"]),
        ({"PUSHPIN": "pushpin:5561"}, ["django_sse.E005"]),
        ({"KEEP_ALIVE": "x", "STREAM_LIMIT_PER_USER": -1}, ["django_sse.E001", "django_sse.E009"]),
    ],
)
def test_each_bad_value_is_its_own_error(settings: dict[str, object], expected: list[str]) -> None:
    """Checks that would read a broken setting do not run: no traceback from check."""
    with override_settings(DJANGO_SSE=settings, MIDDLEWARE=[]):
        assert ids() == expected


@override_settings(DJANGO_SSE={"LLM_PROVIDER": "django_sse.llm.LocalTextSource"})
def test_an_importable_llm_provider_passes() -> None:
    assert [m for m in check_deployment() if m.id == "django_sse.E003"] == []


@pytest.mark.parametrize("value", ["16", -1, 2.5, True, None, 1001])
def test_idle_request_threads_must_be_a_whole_number(value: object) -> None:
    with override_settings(DJANGO_SSE={"IDLE_REQUEST_THREADS": value}, MIDDLEWARE=[]):
        (error,) = check_deployment()
    assert error.id == "django_sse.E004"
    assert f"is {value!r}; it must be a whole number from 0 to 1000" in error.msg


@pytest.mark.parametrize("value", [0, 1, 64])
def test_idle_request_threads_accepts_zero_and_more(value: int) -> None:
    with override_settings(DJANGO_SSE={"IDLE_REQUEST_THREADS": value}, MIDDLEWARE=[]):
        assert ids() == []


@override_settings(DJANGO_SSE={"METRICS": True})
def test_metrics_required_without_prometheus_client_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    (error,) = [m for m in check_deployment() if m.id == "django_sse.E007"]
    assert "prometheus-client is not installed" in error.msg


@pytest.mark.parametrize("value", [["10.0.0.0/8", "::1", "intranet"], ["10.0.0.0/8", 10], None])
def test_metrics_addresses_must_be_addresses_or_networks(value: object) -> None:
    with override_settings(DJANGO_SSE={"METRICS_ADDRESSES": value}):
        (error,) = [m for m in check_deployment() if m.id == "django_sse.E008"]
    assert f"['METRICS_ADDRESSES'] is {value!r}; it must be a list" in error.msg


@override_settings(DJANGO_SSE={"METRICS": True, "METRICS_ADDRESSES": ["127.0.0.1"]})
def test_metrics_with_prometheus_client_and_good_addresses_pass() -> None:
    assert not {"django_sse.E007", "django_sse.E008"} & set(ids())


@override_settings(DJANGO_SSE={"STREAM_LIMIT_PER_USER": "3", "STREAM_LIMIT_PER_ADDRESS": -1})
def test_stream_limits_must_be_whole_numbers() -> None:
    errors = [m for m in check_deployment() if m.id == "django_sse.E009"]
    assert ["STREAM_LIMIT_PER_USER" in errors[0].msg, "_PER_ADDRESS" in errors[1].msg] == [
        True,
        True,
    ]


@override_settings(DJANGO_SSE={"STREAM_LIMIT_PER_USER": 3, "STREAM_LIMIT_CACHE": "shared"})
def test_stream_limits_need_their_cache() -> None:
    (error,) = [m for m in check_deployment() if m.id == "django_sse.E010"]
    assert "'shared'" in error.msg


REDIS = "channels_redis.core.RedisChannelLayer"


@pytest.mark.parametrize(
    "layer",
    [
        "redis://127.0.0.1:6379",
        {"BACKEND": REDIS, "CONFIG": None},
        {"BACKEND": REDIS, "CONFIG": "redis://127.0.0.1:6379"},
        {"BACKEND": REDIS, "CONFIG": {"hosts": "redis://127.0.0.1:6379"}},
        {"BACKEND": REDIS, "CONFIG": {"hosts": 6379}},
    ],
)
def test_a_redis_layer_channels_redis_refuses_is_left_to_it(layer: object) -> None:
    """The read-timeout check (W004) reads the hosts; a layer channels_redis cannot be
    made from gets channels_redis's own error when it is made, not a crash of the
    checks that stops manage.py from starting at all."""
    with override_settings(MIDDLEWARE=[], CHANNEL_LAYERS={"default": layer}):
        assert ids() == []


@pytest.mark.parametrize(
    "hosts",
    [
        [],
        [("127.0.0.1", 6379)],
        ({"address": "redis://a:6379", "socket_timeout": 10}, "redis://b:6379"),
    ],
)
def test_redis_hosts_as_channels_redis_takes_them_are_checked(hosts: object) -> None:
    """No hosts (channels_redis's default, one on localhost), a (host, port) pair, or a
    tuple with one host without a timeout: each has redis-py's default read timeout."""
    redis = pytest.importorskip("redis")
    if int(redis.__version__.split(".")[0]) < 8:
        pytest.skip("The warning is about redis-py 8 and later")
    layers = {"default": {"BACKEND": REDIS, "CONFIG": {"hosts": hosts}}}
    with override_settings(MIDDLEWARE=[], CHANNEL_LAYERS=layers):
        assert ids() == ["django_sse.W004"]
