"""Indexes that keep the StreamLog admin fast at a million rows (issue 18).

The list's indexes gain the primary key, so that a page deep in the list is found from
the index alone. On PostgreSQL, the admin's search gets trigram indexes (pg_trgm) on
the expressions Django's ``icontains`` compares, e.g. ``UPPER(path::text)`` and
``UPPER(HOST(client_address))``, for stream logs and generations; other databases have
no such index, and there those operations do nothing.
"""

from typing import Any

from django.db import migrations, models

TRIGRAM_INDEXES = {
    "django_sse_path_trgm_idx": ("django_sse_streamlog", 'UPPER("path"::text)'),
    "django_sse_address_trgm_idx": ("django_sse_streamlog", 'UPPER(HOST("client_address"))'),
    "django_sse_gen_id_trgm_idx": ("django_sse_generation", 'UPPER("id"::text)'),
    "django_sse_gen_address_trgm_idx": ("django_sse_generation", 'UPPER(HOST("client_address"))'),
}


class RunSQLOnPostgreSQL(migrations.RunSQL):
    """RunSQL that runs only when the database is PostgreSQL."""

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, *args)

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, *args)


class Migration(migrations.Migration):
    dependencies = [
        ("django_sse", "0005_stream_log_held"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="streamlog", name="django_sse_started_idx"),
        migrations.RemoveIndex(model_name="streamlog", name="django_sse_outcome_idx"),
        migrations.RemoveIndex(model_name="streamlog", name="django_sse_view_idx"),
        migrations.AddIndex(
            model_name="streamlog",
            index=models.Index(fields=["-started_at", "-id"], name="django_sse_started_id_idx"),
        ),
        migrations.AddIndex(
            model_name="streamlog",
            index=models.Index(
                fields=["outcome", "-started_at", "-id"], name="django_sse_outcome_id_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="streamlog",
            index=models.Index(
                fields=["view_name", "-started_at", "-id"], name="django_sse_view_id_idx"
            ),
        ),
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may
        # create it without being a superuser.
        RunSQLOnPostgreSQL(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm", reverse_sql=migrations.RunSQL.noop
        ),
        *(
            RunSQLOnPostgreSQL(
                f"CREATE INDEX {name} ON {table} USING gin ({expression} gin_trgm_ops)",
                reverse_sql=f"DROP INDEX {name}",
            )
            for name, (table, expression) in TRIGRAM_INDEXES.items()
        ),
    ]
