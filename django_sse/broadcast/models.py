"""The history store's tables: each channel's last sequence number, and its recent events."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.translation import gettext_lazy as _

from django_sse.broadcast._channels import MAX_NAME_LENGTH

__all__ = ["MAX_EVENT_TYPE_LENGTH", "BroadcastChannel", "BroadcastEvent", "ChannelNameField"]

MAX_EVENT_TYPE_LENGTH = 200


class ChannelNameField(models.CharField):  # type: ignore[type-arg]
    """A channel name, compared case-sensitively on every database, as channel layers do.

    MariaDB's and MySQL's default collations ignore case: there "Room" and "room"
    would share one counter and one history. The column gets the binary utf8mb4_bin
    collation on those databases (and with it the utf8mb4 character set, whatever the
    table's); elsewhere it is a plain CharField.
    """

    def db_parameters(self, connection: BaseDatabaseWrapper) -> dict[str, Any]:
        parameters = super().db_parameters(connection)
        if connection.vendor == "mysql" and not self.db_collation:
            parameters["collation"] = "utf8mb4_bin"
        return parameters


class BroadcastChannel(models.Model):
    """One row per channel ever published to; its counter is never reset.

    Publishing increments ``last_seq`` in the transaction that stores the event, so the
    row lock orders a channel's publishers and sequence numbers follow commit order.
    """

    name = ChannelNameField(_("name"), max_length=MAX_NAME_LENGTH, primary_key=True)
    last_seq = models.PositiveBigIntegerField(_("last sequence number"), default=0)

    class Meta:
        verbose_name = _("broadcast channel")
        verbose_name_plural = _("broadcast channels")

    def __str__(self) -> str:
        return f"{self.name} ({self.last_seq})"


class BroadcastEvent(models.Model):
    """A published event, kept for replay until the history window drops it."""

    channel = ChannelNameField(_("channel"), max_length=MAX_NAME_LENGTH)
    seq = models.PositiveBigIntegerField(_("sequence number"))
    # The SSE event type; empty for the default, "message".
    event = models.CharField(_("event type"), max_length=MAX_EVENT_TYPE_LENGTH, blank=True)
    # As sent in the data field: a str as given, anything else as JSON.
    data = models.TextField(_("data"))
    created_at = models.DateTimeField(_("created"))

    class Meta:
        verbose_name = _("broadcast event")
        verbose_name_plural = _("broadcast events")
        constraints = [
            # Also the index every replay and gap read walks.
            models.UniqueConstraint(fields=["channel", "seq"], name="django_sse_event_seq_uniq"),
        ]
        indexes = [
            models.Index(fields=["channel", "created_at"], name="django_sse_event_age_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.seq}"
