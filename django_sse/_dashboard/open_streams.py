"""What is open right now, by view and by user: two grouped queries on the outcome index.

Rows come from every server process through the database, so this is what the whole
site has open, as far as the stream logs know (a row appears a second after its stream
opens, see tracking.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count, F

from django_sse.models import OPEN, StreamLog

__all__ = ["TOP_USERS", "OpenStreams", "open_streams"]

# Users listed by name; the others are added up in one line, whatever their number.
TOP_USERS = 10


@dataclass(frozen=True)
class OpenStreams:
    """A snapshot, comparable with the last one so that only changes are sent."""

    total: int
    by_view: tuple[tuple[str, int], ...]
    # (username, streams); None for streams without a logged-in user.
    by_user: tuple[tuple[str | None, int], ...]

    @property
    def other_users(self) -> int:
        """Streams of the users after the first TOP_USERS."""
        return self.total - sum(count for _, count in self.by_user)


def open_streams() -> OpenStreams:
    """Both queries read only the open rows (``outcome``'s index), never the whole table."""
    still_open = StreamLog.objects.filter(outcome=OPEN).order_by()
    by_view = tuple(
        (row["view_name"], row["n"])
        for row in still_open.values("view_name")
        .annotate(n=Count("pk"))
        .order_by("-n", "view_name")
    )
    username = f"user__{get_user_model().USERNAME_FIELD}"
    by_user = tuple(
        (row[username], row["n"])
        for row in still_open.values("user_id", username)
        .annotate(n=Count("pk"))
        .order_by("-n", F(username).asc(nulls_last=True), "user_id")[:TOP_USERS]
    )
    return OpenStreams(sum(count for _, count in by_view), by_view, by_user)
