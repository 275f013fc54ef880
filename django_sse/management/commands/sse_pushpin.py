"""Run Pushpin in front of this project, configured from its PUSHPIN setting."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sse.broadcast import _pushpin, _pushpin_config


class Command(BaseCommand):
    help = (
        "Write a Pushpin configuration for this project (publish port and sig_key from "
        "DJANGO_SSE['PUSHPIN'], requests routed to --origin) and run Pushpin with it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="The address clients connect to (127.0.0.1)."
        )
        parser.add_argument(
            "--port", type=int, default=7999, help="The port clients connect to (7999)."
        )
        parser.add_argument(
            "--origin",
            action="append",
            help="host:port of a Django server, tried in the order given (127.0.0.1:8000).",
        )
        parser.add_argument(
            "--dir", help="Where to write the configuration and logs (a new temporary one)."
        )
        parser.add_argument(
            "--message-rate",
            type=int,
            default=2500,
            help="Deliveries per second, one per subscriber and event (Pushpin's 2500).",
        )
        parser.add_argument(
            "--print", action="store_true", help="Print the configuration; do not run Pushpin."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["port"] <= 65535:
            raise CommandError(f"--port must be 1 to 65535, not {options['port']}")
        if options["message_rate"] < 1:
            raise CommandError(f"--message-rate must be 1 or more, not {options['message_rate']}")
        for option, value in [("--host", options["host"])] + [
            ("--origin", origin) for origin in options["origin"] or []
        ]:
            # Both are written into Pushpin's files, one setting or route a line.
            if not value.strip() or any(c.isspace() or not c.isprintable() for c in value):
                raise CommandError(f"{option} must be a host or host:port, not {value!r}")
        try:
            pushpin = _pushpin.settings()
        except ImproperlyConfigured as error:
            # The check (E005) says so too, unless --skip-checks left it out.
            raise CommandError(str(error)) from error
        if pushpin is None:
            raise CommandError("Set DJANGO_SSE['PUSHPIN'] first (see the Pushpin docs).")
        publish_port = urlsplit(pushpin.publish_urls[0]).port
        if publish_port is None:
            raise CommandError("DJANGO_SSE['PUSHPIN']['PUBLISH_URL'] needs a port.")
        if options["dir"] is not None and not (
            options["dir"].strip() and options["dir"].isprintable()
        ):
            raise CommandError(f"--dir must be a folder's path, not {options['dir']!r}")
        # Absolute: Pushpin reads the paths in pushpin.conf from the folder it is in.
        directory = Path(options["dir"] or tempfile.mkdtemp(prefix="django-sse-pushpin-"))
        directory = directory.absolute()
        rate = options["message_rate"]
        try:
            sections = _pushpin_config.config_sections(
                http_port=f"{options['host']}:{options['port']}",
                publish_port=publish_port,
                sig_key=pushpin.sig_key.decode(),
                sig_iss=pushpin.sig_iss or "pushpin",
                directory=directory,
                message_rate=rate,
                message_hwm=10 * rate,
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        config = _pushpin_config.render(sections)
        origins = _pushpin_config.routes(options["origin"] or ["127.0.0.1:8000"])
        if options["print"]:
            self.stdout.write(config + f"# {directory / 'routes'}\n{origins}")
            return
        binary = shutil.which("pushpin")
        if binary is None:
            raise CommandError("pushpin is not installed (Debian: apt-get install pushpin).")
        try:
            for folder in ("run", "log"):
                (directory / folder).mkdir(parents=True, exist_ok=True)
            (directory / "routes").write_text(origins)
            (directory / "pushpin.conf").write_text(config)
        except OSError as error:
            raise CommandError(f"--dir {str(directory)!r} cannot be written to: {error}") from error
        self.stdout.write(
            f"Pushpin on port {options['port']}, publishing at {pushpin.publish_urls[0]}; "
            f"configuration and logs in {directory}",
        )
        self.stdout.flush()
        # Pushpin itself, in this process: Ctrl-C and SIGTERM stop it and its services.
        os.execv(binary, [binary, "--config", str(directory / "pushpin.conf"), "--merge-output"])
