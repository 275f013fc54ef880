"""A Pushpin configuration for a project in Pushpin mode (``manage.py sse_pushpin``).

Written for Pushpin 1.36 as Debian packages it. Its own config sends requests to the
origin through a system zurl at /var/run/zurl, a service that often does not run (and
then the origin never answers: "origin error" in pushpin-proxy.log); this one makes
Pushpin's runner start a zurl of its own. The handler's ports follow the publish port
of ``DJANGO_SSE["PUSHPIN"]["PUBLISH_URL"]`` (Pushpin numbers them from 5560 plus a
``port_offset``), and its ``sig_key`` and ``sig_iss`` are the setting's ``SIG_KEY`` and
``SIG_ISS`` (Pushpin's default issuer, "pushpin", without one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["HANDLER_PORTS", "config_sections", "render", "routes"]

# The handler's ports before port_offset: ZMQ push-in, the HTTP publish endpoint, ZMQ
# push-in (SUB), commands.
HANDLER_PORTS = {"push_in": 5560, "publish": 5561, "push_in_sub": 5562, "command": 5563}
INTERNAL_CONF = "/usr/lib/pushpin/internal.conf"


def config_sections(
    *,
    http_port: str,
    publish_port: int,
    sig_key: str,
    directory: Path,
    sig_iss: str = "pushpin",
    log_level: int = 2,
    max_connections: int = 50_000,
    message_rate: int = 2500,
    message_hwm: int = 25_000,
) -> dict[str, dict[str, str]]:
    """The configuration, section by section. ``http_port`` is where clients connect:
    a port, or address:port.

    ``message_rate`` (deliveries per second) and ``message_hwm`` (deliveries queued) count
    one delivery per subscriber and event: with 10,000 subscribers, Pushpin's defaults
    send an event every 4 s and drop the rest of a burst. Raise both for large channels.
    """
    offset = publish_port - HANDLER_PORTS["publish"]
    if offset < 0:
        raise ValueError(
            f"Pushpin's publish port is {HANDLER_PORTS['publish']} plus an offset: "
            f"{publish_port} is below it"
        )
    return {
        "global": {
            "include": INTERNAL_CONF,
            "rundir": str(directory / "run"),
            "ipc_prefix": "pushpin-",
            "port_offset": str(offset),
            "stats_connection_ttl": "120",
        },
        "runner": {
            "services": "condure,zurl,pushpin-proxy,pushpin-handler",
            "http_port": http_port,
            "logdir": str(directory / "log"),
            "log_level": str(log_level),
            "client_buffer_size": "8192",
            "client_maxconn": str(max_connections),
            "condure_bin": "condure",
            "zurl_bin": "zurl",
        },
        "proxy": {
            "routesfile": str(directory / "routes"),
            "debug": "false",
            "auto_cross_origin": "false",
            "accept_x_forwarded_protocol": "false",
            "set_x_forwarded_protocol": "proto-only",
            "x_forwarded_for": "",
            "x_forwarded_for_trusted": "",
            "orig_headers_need_mark": "",
            "accept_pushpin_route": "false",
            "log_from": "false",
            "log_user_agent": "false",
            "sig_iss": sig_iss,
            "sig_key": sig_key,
            "upstream_key": "",
            "updates_check": "off",
            "organization_name": "",
            # The runner's own zurl, not the system one at /var/run/zurl.
            "zurl_out_specs": "ipc://{rundir}/{ipc_prefix}zurl-in",
            "zurl_out_stream_specs": "ipc://{rundir}/{ipc_prefix}zurl-in-stream",
            "zurl_in_specs": "ipc://{rundir}/{ipc_prefix}zurl-out",
        },
        "handler": {
            # Base ports: the runner adds port_offset to each.
            "push_in_spec": f"tcp://127.0.0.1:{HANDLER_PORTS['push_in']}",
            "push_in_sub_specs": f"tcp://127.0.0.1:{HANDLER_PORTS['push_in_sub']}",
            "push_in_sub_connect": "false",
            "push_in_http_addr": "127.0.0.1",
            "push_in_http_port": str(HANDLER_PORTS["publish"]),
            "push_in_http_max_headers_size": "10000",
            "push_in_http_max_body_size": "1000000",
            "stats_spec": "ipc://{rundir}/{ipc_prefix}stats",
            "command_spec": f"tcp://127.0.0.1:{HANDLER_PORTS['command']}",
            "message_rate": str(message_rate),
            "message_hwm": str(message_hwm),
            "message_wait": "5000",
            "id_cache_ttl": "60",
            "connection_subscription_max": "20",
            "subscription_linger": "60",
            "stats_subscription_ttl": "60",
            "stats_report_interval": "10",
            "stats_format": "tnetstring",
        },
    }


def render(sections: Mapping[str, Mapping[str, str]]) -> str:
    return "".join(
        f"[{name}]\n" + "".join(f"{key}={value}\n" for key, value in values.items()) + "\n"
        for name, values in sections.items()
    )


def routes(origins: Iterable[str], condition: str = "*") -> str:
    """A routes line: every request to ``origins`` (host:port), tried in this order.

    Pushpin does not balance a route over its targets: the second gets requests only
    while the first is down.
    """
    return f"{condition} {' '.join(origins)}\n"
