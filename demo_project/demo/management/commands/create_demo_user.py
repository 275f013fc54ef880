"""``manage.py create_demo_user``: a superuser to look at the demo's stream logs with."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

USERNAME = "demo"


class Command(BaseCommand):
    help = (
        f"Create the superuser {USERNAME!r}, or reset its password, with a new random "
        "password, and print how to log in. Development only: refused when DEBUG is off."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the demo server runs, for the printed admin URL.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # A superuser whose password is printed to the terminal has no place in production.
        if not settings.DEBUG:
            raise CommandError("create_demo_user is for development: DEBUG is off.")
        user_model = get_user_model()
        # A new password on every run: nothing guessable, nothing stored in the repository.
        password = secrets.token_urlsafe(16)
        user, created = user_model._default_manager.get_or_create(
            **{user_model.USERNAME_FIELD: USERNAME}
        )
        user.is_active = user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        admin_url = options["base_url"].rstrip("/") + reverse("admin:index")
        status = "created" if created else "password reset"
        self.stdout.write(self.style.SUCCESS(f"Demo superuser {status}."))
        self.stdout.write(f"  username: {USERNAME}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write(f"  admin:    {admin_url}")
