"""StreamLog: one row per stream, written when it opens and when it closes.

The broadcast history's tables and the resumable generations' table are defined next
to the code that uses them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_sse.broadcast.models import BroadcastChannel, BroadcastEvent
from django_sse.llm.models import Generation
from django_sse.stats import Outcome

__all__ = ["BroadcastChannel", "BroadcastEvent", "Generation", "StreamLog"]

OPEN = "open"
OUTCOME_CHOICES = [
    (OPEN, _("Open")),
    *((o.value, o.value.replace("_", " ").capitalize()) for o in Outcome),
]


class StreamLog(models.Model):
    view_name = models.CharField(_("view"), max_length=200)
    route = models.CharField(_("route"), max_length=255, blank=True)
    path = models.CharField(_("path"), max_length=2048)
    query_string = models.TextField(_("query string"), blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    client_address = models.GenericIPAddressField(_("client address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=255, blank=True)
    # host:pid of the server process, so stale rows of a dead process can be found.
    server = models.CharField(_("server process"), max_length=255, blank=True)
    started_at = models.DateTimeField(_("started"))
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    duration = models.DurationField(_("duration"), null=True, blank=True)
    events_sent = models.PositiveBigIntegerField(_("events"), default=0)
    bytes_sent = models.PositiveBigIntegerField(_("bytes"), default=0)
    last_event_id = models.CharField(_("last event id sent"), max_length=1024, blank=True)
    outcome = models.CharField(_("outcome"), max_length=24, choices=OUTCOME_CHOICES, default=OPEN)
    error = models.CharField(_("error"), max_length=1000, blank=True)
    # Streams relaying a language model's answer (django_sse.llm).
    model = models.CharField(_("model"), max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True, blank=True)
    time_to_first_token = models.DurationField(_("time to first token"), null=True, blank=True)

    class Meta:
        verbose_name = _("stream log")
        verbose_name_plural = _("stream logs")
        ordering = ["-started_at", "-pk"]
        # Each in the list's order, primary key included, so that a page deep in the
        # list is found from the index alone. PostgreSQL also gets trigram indexes for
        # the admin's search (migration 0006; no other database has them).
        indexes = [
            models.Index(fields=["-started_at", "-id"], name="django_sse_started_id_idx"),
            models.Index(
                fields=["outcome", "-started_at", "-id"], name="django_sse_outcome_id_idx"
            ),
            models.Index(fields=["view_name", "-started_at", "-id"], name="django_sse_view_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.view_name} {self.path} ({self.outcome})"
