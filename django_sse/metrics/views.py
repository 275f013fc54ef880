"""The Prometheus exposition of this process's metrics, or of every worker's in
prometheus-client's multiprocess mode, to those METRICS_STAFF, METRICS_TOKEN and
METRICS_ADDRESSES let in.

A sync view on purpose: multiprocess mode reads one file per worker and metric, and
a staff check may load the session; Django runs it in a thread.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from django_sse import _metrics, conf
from django_sse.tracking import client_address

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client import multiprocess as prometheus_multiprocess
    from prometheus_client.exposition import choose_encoder
except ImportError as error:  # pragma: no cover - the extra is missing
    raise ImportError(
        "django_sse.metrics needs prometheus-client: pip install 'django-sse-kit[metrics]'"
    ) from error

__all__ = ["metrics"]

DENIED = (
    "The metrics need a staff login, the metrics token or an allowed address: "
    "see DJANGO_SSE's METRICS_STAFF, METRICS_TOKEN and METRICS_ADDRESSES."
)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics.enabled():
        return HttpResponse(
            "Metrics are off: DJANGO_SSE['METRICS'] is False.",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    if not allowed(request):
        return HttpResponse(DENIED, status=403, content_type="text/plain; charset=utf-8")
    # Multiprocess mode reads the files, so this worker's open streams are written
    # first; otherwise the registry's collector does the same.
    _metrics.flush()
    registry = REGISTRY
    if _metrics.multiprocess():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)


def allowed(request: HttpRequest) -> bool:
    """Whether any of the configured ways lets this request read the metrics."""
    token = conf.get("METRICS_TOKEN")
    if token:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), str(token).encode()
        ):
            return True
    networks = conf.get("METRICS_ADDRESSES")
    if networks:
        address = client_address(request)
        if address is not None and any(
            _address_in(address, ipaddress.ip_network(network, strict=False))
            for network in networks
        ):
            return True
    user = getattr(request, "user", None)
    return bool(conf.get("METRICS_STAFF") and user is not None and user.is_active and user.is_staff)


def _address_in(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether ``address`` is in ``network``, an IPv4 client seen by a dual-stack socket
    included: a server listening on ``::`` reports 10.1.2.3 as ``::ffff:10.1.2.3``,
    which an IPv4 network such as 10.0.0.0/8 does not contain as it is written."""
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip in network or (mapped is not None and mapped in network)
