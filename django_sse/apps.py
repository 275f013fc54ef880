from __future__ import annotations

from django.apps import AppConfig


class DjangoSSEConfig(AppConfig):
    name = "django_sse"
    verbose_name = "Server-Sent Events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_sse import checks  # noqa: F401  (registers the system checks)
