"""django_sse.metrics.urls: the exposition, and everyone it must turn away."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

from django_sse import _metrics
from django_sse.stats import StreamStats
from tests.prometheus import parse, total

pytestmark = pytest.mark.django_db

URL = "/metrics"
TOKEN = "s3cret-scrape-token"


def settings(**metrics: Any) -> Any:
    return override_settings(DJANGO_SSE=metrics)


def assert_refused(response: Any) -> None:
    assert response.status_code == 403
    assert b"django_sse_" not in response.content
    assert b"METRICS_STAFF" in response.content


@pytest.fixture
def staff(django_user_model: Any) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create(username="ops", is_staff=True))
    return client


def test_staff_read_the_metrics_in_prometheus_text_format(staff: Client) -> None:
    meter = _metrics.meter("exposed", StreamStats(events=2))
    assert meter is not None
    response = staff.get(URL)
    meter.closed()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"]
    samples = parse(response.content.decode())
    assert total(samples, "django_sse_streams_open", view="exposed") == 1
    assert total(samples, "django_sse_events_sent_total", view="exposed") == 2


def test_openmetrics_when_asked_for(staff: Client) -> None:
    response = staff.get(URL, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_anonymous_clients_are_refused() -> None:
    assert_refused(Client().get(URL))


def test_users_who_are_not_staff_are_refused(django_user_model: Any) -> None:
    client = Client()
    client.force_login(django_user_model.objects.create(username="someone"))
    assert_refused(client.get(URL))


def test_inactive_staff_are_refused(django_user_model: Any) -> None:
    client = Client()
    user = django_user_model.objects.create(username="gone", is_staff=True, is_active=False)
    client.force_login(user)
    assert_refused(client.get(URL))


def test_staff_are_refused_when_staff_access_is_off(staff: Client) -> None:
    with settings(METRICS_STAFF=False, METRICS_TOKEN=TOKEN):
        assert_refused(staff.get(URL))


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
        (f"Bearer {TOKEN}x", 403),
        (f"Bearer {TOKEN[:-1]}", 403),
        (f"Basic {TOKEN}", 403),
        (TOKEN, 403),
        ("Bearer ", 403),
        ("", 403),
    ],
)
def test_a_scraper_with_the_token(authorization: str, status: int) -> None:
    with settings(METRICS_TOKEN=TOKEN):
        response = Client().get(URL, headers={"Authorization": authorization})
    assert response.status_code == status
    if status == 403:
        assert_refused(response)


def test_no_token_is_accepted_while_none_is_set() -> None:
    assert_refused(Client().get(URL, headers={"Authorization": "Bearer "}))
    assert_refused(Client().get(URL, headers={"Authorization": "Bearer None"}))


@pytest.mark.parametrize(
    ("address", "status"),
    [("10.1.2.3", 200), ("10.255.0.1", 200), ("192.168.0.9", 200), ("11.0.0.1", 403)],
)
def test_scrapers_from_allowed_addresses(address: str, status: int) -> None:
    with settings(METRICS_STAFF=False, METRICS_ADDRESSES=["10.0.0.0/8", "192.168.0.9"]):
        response = Client(REMOTE_ADDR=address).get(URL)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("address", "status"),
    [("::ffff:10.1.2.3", 200), ("::ffff:192.168.0.9", 200), ("::ffff:11.0.0.1", 403)],
)
def test_an_ipv4_scraper_seen_by_a_dual_stack_server_is_let_in(address: str, status: int) -> None:
    """A server listening on "::" reports IPv4 clients as IPv4-mapped IPv6 addresses."""
    with settings(METRICS_STAFF=False, METRICS_ADDRESSES=["10.0.0.0/8", "192.168.0.9"]):
        response = Client(REMOTE_ADDR=address).get(URL)
    assert response.status_code == status
    if status == 403:
        assert_refused(response)


def test_a_forwarded_address_is_trusted_only_from_the_configured_header() -> None:
    allowed = {"METRICS_ADDRESSES": ["10.0.0.0/8"]}
    spoofed = {"X-Forwarded-For": "10.0.0.1"}
    with settings(**allowed):
        assert_refused(Client(REMOTE_ADDR="203.0.113.9").get(URL, headers=spoofed))
    with settings(**allowed, CLIENT_ADDRESS_HEADER="X-Forwarded-For"):
        # The proxy appends the address it saw: anything left of it is the client's say.
        response = Client(REMOTE_ADDR="10.9.9.9").get(
            URL, headers={"X-Forwarded-For": "10.0.0.1, 203.0.113.9"}
        )
        assert_refused(response)
        response = Client(REMOTE_ADDR="10.9.9.9").get(
            URL, headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}
        )
        assert response.status_code == 200


@pytest.mark.parametrize("entry", ["unknown", "203.0.113.9:4711", "[2001:db8::1]:443"])
def test_a_proxy_entry_naming_an_outside_client_is_refused_not_read_as_the_proxy(
    entry: str,
) -> None:
    """The proxy (10.9.9.9) is in the allowed network; the client it names is not."""
    with settings(
        METRICS_STAFF=False,
        METRICS_ADDRESSES=["10.0.0.0/8"],
        CLIENT_ADDRESS_HEADER="X-Forwarded-For",
    ):
        response = Client(REMOTE_ADDR="10.9.9.9").get(
            URL, headers={"X-Forwarded-For": f"10.0.0.1, {entry}"}
        )
    assert_refused(response)


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_only_get_reads_the_metrics(staff: Client, method: str) -> None:
    assert getattr(staff, method)(URL).status_code == 405


def test_a_clear_404_while_metrics_are_off(staff: Client) -> None:
    with settings(METRICS=False):
        response = staff.get(URL)
    assert response.status_code == 404
    assert b"METRICS" in response.content


@pytest.fixture
def with_django_prometheus() -> None:
    """django-prometheus' metrics, registered in the default registry as its middleware
    does when Django builds it."""
    from django_prometheus.middleware import Metrics

    Metrics.get_instance()


@pytest.mark.usefixtures("with_django_prometheus")
def test_django_prometheus_and_django_sse_share_one_registry(staff: Client) -> None:
    from django.test import RequestFactory
    from django_prometheus.exports import ExportToDjangoView

    ours = staff.get(URL).content.decode()
    theirs = ExportToDjangoView(RequestFactory().get("/metrics")).content.decode()
    assert "django_http_requests_before_middlewares_total" in ours
    for name in ("django_sse_streams_open", "django_sse_broadcast_published_total"):
        assert name in ours
        assert name in theirs
