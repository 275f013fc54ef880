"""The resumable generations' table: who may read each answer, where it runs, how it ended.

Kept apart from the broadcast history that holds the answer's events: history is
pruned, and an answer's owner must be known for the answer's whole life and after it.
The rows also count the answers each user or address has running (see _records.py).
"""

from __future__ import annotations

import enum

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["Generation", "GenerationOutcome"]


class GenerationOutcome(str, enum.Enum):
    """How a resumable answer ended, or that it still runs."""

    RUNNING = "running"
    # The model finished the answer (or reached max_tokens, or a content filter).
    COMPLETED = "completed"
    STOPPED = "stopped"
    # Nobody followed it for LLM_GENERATION_ABANDON_AFTER seconds.
    ABANDONED = "abandoned"
    # It ran longer than LLM_GENERATION_TIMEOUT seconds.
    TIMEOUT = "timeout"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class Generation(models.Model):
    id = models.CharField(_("id"), max_length=22, primary_key=True)
    # Who started it; None if anonymous. Deleting the user deletes the record, and with
    # it every way to read the answer: it never becomes anyone's.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    client_address = models.GenericIPAddressField(_("client address"), null=True, blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    # host:pid of the server process it runs in.
    server = models.CharField(_("server process"), max_length=255, blank=True)
    started_at = models.DateTimeField(_("started"))
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"),
        max_length=24,
        choices=[(o.value, o.value.capitalize()) for o in GenerationOutcome],
        default=GenerationOutcome.RUNNING.value,
    )

    class Meta:
        verbose_name = _("generation")
        verbose_name_plural = _("generations")
        ordering = ["-started_at"]
        indexes = [
            # What the limits count: a user's, or an anonymous address's, running answers.
            models.Index(fields=["user", "ended_at"], name="django_sse_gen_user_idx"),
            models.Index(fields=["client_address", "ended_at"], name="django_sse_gen_addr_idx"),
            models.Index(fields=["-started_at"], name="django_sse_gen_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.outcome})"
