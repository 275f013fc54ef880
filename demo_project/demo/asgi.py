"""The ASGI entry point: ``daphne demo.asgi:application``, and what ``runserver`` serves.

Event streams need ASGI; there is deliberately no wsgi.py. django_sse's
get_asgi_application() is Django's own, telling each stream its request's ASGI
channels: broadcast events then reach idle streams straight from the fan-out, and on
Django 4.2 a stream notices that its client disconnected (see django_sse.asgi and
check django_sse.W003).
"""

from __future__ import annotations

import os

from django_sse.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
application = get_asgi_application()
