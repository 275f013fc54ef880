"""The Redis server the broadcast tests share, and a fresh key prefix per test."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

from tests.needs import unavailable

REDIS_URL = os.environ.get("SSE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def redis_url() -> str:
    """The URL of a Redis that answers PING; otherwise skip (or fail, where required)."""
    where = urlsplit(REDIS_URL)
    host, port = where.hostname or "127.0.0.1", where.port or 6379
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as error:
        unavailable("redis", f"No Redis reachable at {host}:{port}: {error}")
    if not reply.startswith(b"+PONG"):
        unavailable("redis", f"The server at {host}:{port} does not answer like Redis: {reply!r}")
    return REDIS_URL


def unique_prefix() -> str:
    """Keys of their own for each test, so concurrent runs never see each other's events."""
    return f"sse-test-{uuid.uuid4().hex[:12]}"


def redis_layers(prefix: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": redis_url(), "socket_timeout": 10}],
                "prefix": prefix,
            },
        }
    }
