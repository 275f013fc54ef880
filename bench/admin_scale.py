"""The admin at a million rows: how long each StreamLog admin page takes on PostgreSQL.

Why: an operator opens the stream log's changelist on a table that grows by a row per
stream, forever. Each of its pages (the list, each filter, the search, paging deep
into the list) must answer in under 300 ms with 1,000,000 rows (issue 18).

Method: a PostgreSQL database of the benchmark's own (``--database``, created if
missing, migrated) is filled by the server itself with ``INSERT ... SELECT`` over
``generate_series`` (about a minute for 1M rows, not 1M ORM saves): ``--rows`` stream
logs over the last 30 days from 40 views of skewed popularity (a few of them language
model chats with token counts), ``--users`` users (70 % of streams logged in), every
outcome, about 0.1 % still open, and ``--generations`` resumable generations. The
random numbers are seeded, so two fills are alike. A database that already holds the
requested counts is reused (``--refill`` starts over). Then ``VACUUM ANALYZE``: the
planner's statistics are what a database that has been running for a while has.

Each page in ``PAGES`` is fetched with Django's test ``Client`` in this process, logged
in as a superuser: one untimed warm-up, then ``--repeat`` timed runs. The time is the
server's whole work for the request (middleware, queries, templates), without a
network. Reported per page: median and max ms, the number of SQL queries and the
slowest one (from ``CaptureQueriesContext``). Results: bench/results/admin_scale.json.
Loopback only: the database is the one at ``--pghost`` (default 127.0.0.1).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h

LOGS = "/admin/django_sse/streamlog/"
GENERATIONS = "/admin/django_sse/generation/"
TARGET_MS = 300.0
PAGE_TIMEOUT_MS = 60_000  # a page slower than this is cut off by PostgreSQL


@dataclass(frozen=True)
class Page:
    name: str
    # Formatted with the fill's dates ({year}, {month}, {day}, {week_ago}, {today}) and
    # pages in its middle ({middle}: 5,000 of 10,000 at 1M rows; {middle_completed}).
    path: str


# What an operator clicks. Add a page here to measure it too.
PAGES = [
    Page("changelist", LOGS),
    Page("page 2", LOGS + "?p=2"),
    Page("deep page (the middle)", LOGS + "?p={middle}"),
    Page("filter outcome=error", LOGS + "?outcome__exact=error"),
    Page(
        "filter outcome=completed, deep page",
        LOGS + "?outcome__exact=completed&p={middle_completed}",
    ),
    Page("open streams", LOGS + "?outcome__exact=open"),
    Page("filter view", LOGS + "?view_name=feed-12"),
    Page(
        "filter started: past 7 days", LOGS + "?started_at__gte={week_ago}&started_at__lt={today}"
    ),
    Page("date hierarchy: month", LOGS + "?started_at__year={year}&started_at__month={month}"),
    Page(
        "date hierarchy: day",
        LOGS + "?started_at__year={year}&started_at__month={month}&started_at__day={day}",
    ),
    Page("search path", LOGS + "?q=/sse/feed-12/4711/"),
    Page("search username", LOGS + "?q=user01234"),
    Page("search address", LOGS + "?q=10.1.2.3"),
    Page("search, matching most rows", LOGS + "?q=feed"),
    Page("search + filter", LOGS + "?q=user01234&outcome__exact=completed"),
    Page("dashboard (open streams and the last 24 hours' charts)", LOGS + "dashboard/"),
    Page("generations", GENERATIONS),
    Page("generations, filter model", GENERATIONS + "?model=gpt-4o-mini"),
    Page("generations, search", GENERATIONS + "?q=user01234"),
]

USERS_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT '!', false, 'user' || lpad(n::text, 5, '0'), '', '', '', false, true, now()
FROM generate_series(1, %(users)s) AS n
"""

# One row per n, its random draws made once in the inner SELECT so that the columns of
# a row agree (an open stream has no end; a chat view has a model).
LOGS_SQL = """
INSERT INTO django_sse_streamlog (
    view_name, route, path, query_string, user_id, client_address, user_agent, server,
    started_at, ended_at, duration, events_sent, bytes_sent, last_event_id, outcome, error,
    model, prompt_tokens, completion_tokens, time_to_first_token)
SELECT
    r.view_name, r.view_name || '/<int:pk>/', '/sse/' || r.view_name || '/' || r.item || '/',
    CASE WHEN r.draw < 0.2 THEN 'since=' || r.item ELSE '' END,
    CASE WHEN r.logged_in < 0.7 THEN %(first_user)s + floor(r.user_draw * %(users)s)::int END,
    ('10.' || floor(r.address * 4) || '.' || floor(r.address * 1024)::int %% 256 || '.'
        || floor(r.address * 262144)::int %% 256)::inet,
    (ARRAY['Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0', 'Mozilla/5.0 (iPhone) Safari/604.1',
           'python-httpx/0.28.1'])[1 + floor(r.draw * 3)::int],
    'web-' || floor(r.draw * 4) || ':' || (1000 + floor(r.user_draw * 8)),
    r.started_at,
    CASE WHEN r.outcome <> 'open' THEN r.started_at + r.duration END,
    CASE WHEN r.outcome <> 'open' THEN r.duration END,
    r.events, r.events * 64, r.events::text, r.outcome,
    CASE WHEN r.outcome = 'error' THEN 'RuntimeError: upstream went away' ELSE '' END,
    CASE WHEN r.chat
         THEN (ARRAY['gpt-4o-mini', 'gpt-4.1', 'claude-sonnet'])[1 + floor(r.draw * 3)::int]
         ELSE '' END,
    CASE WHEN r.chat THEN 200 + floor(r.draw * 2000)::int END,
    CASE WHEN r.chat THEN r.events END,
    CASE WHEN r.chat THEN interval '1 millisecond' * (150 + floor(r.user_draw * 900)) END
FROM (
    SELECT
        v.view_name, v.view_name LIKE 'chat-%%' AS chat, d.*,
        CASE WHEN d.outcome_draw < 0.001 THEN now() - interval '1 hour' * d.draw
             ELSE now() - interval '30 days' * d.when_draw END AS started_at,
        CASE WHEN d.outcome_draw < 0.001 THEN 'open'
             WHEN d.outcome_draw < 0.50 THEN 'completed'
             WHEN d.outcome_draw < 0.80 THEN 'client_disconnected'
             WHEN d.outcome_draw < 0.86 THEN 'timeout'
             WHEN d.outcome_draw < 0.90 THEN 'error'
             WHEN d.outcome_draw < 0.93 THEN 'shutdown'
             WHEN d.outcome_draw < 0.96 THEN 'slow_consumer'
             WHEN d.outcome_draw < 0.98 THEN 'revoked'
             ELSE 'held' END AS outcome,
        interval '1 second' * (-ln(1 - d.draw) * 120) AS duration,
        floor(-ln(1 - d.draw) * 300)::bigint AS events
    FROM (
        SELECT n, random() AS draw, random() AS outcome_draw, random() AS when_draw,
               random() AS logged_in, random() AS user_draw, random() AS address,
               floor(random() * 5000)::int AS item, floor(40 * power(random(), 2))::int AS view
        FROM generate_series(1, %(rows)s) AS n
    ) AS d
    JOIN (
        SELECT k, CASE WHEN k < 4 THEN 'chat-' || k ELSE 'feed-' || lpad(k::text, 2, '0') END
        FROM generate_series(0, 39) AS k
    ) AS v (k, view_name) ON v.k = d.view
) AS r
"""

GENERATIONS_SQL = """
INSERT INTO django_sse_generation (id, user_id, client_address, model, server, started_at,
                                   ended_at, outcome)
SELECT
    substr(md5(n::text), 1, 22), %(first_user)s + floor(random() * %(users)s)::int,
    ('10.0.0.' || (n %% 200))::inet, (ARRAY['gpt-4o-mini', 'gpt-4.1', 'claude-sonnet'])[1 + n %% 3],
    'web-1:1001', now() - interval '30 days' * w, now() - interval '30 days' * w + interval '20 s',
    (ARRAY['completed', 'completed', 'completed', 'stopped', 'abandoned', 'error'])[1 + n %% 6]
FROM (SELECT n, random() AS w FROM generate_series(1, %(generations)s) AS n) AS g
"""


def main() -> int:
    args = parse_args()
    h.exit_on_sigterm()
    create_database(args.pghost, args.database)
    os.environ["BENCH_ADMIN_DB"] = args.database
    os.environ["BENCH_ADMIN_PGHOST"] = args.pghost
    sys.path.insert(0, str(h.ROOT))  # django_sse from this checkout
    import adminsite  # noqa: F401  (configures Django)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    fill(args)
    print(f"admin_scale: {args.rows:,} stream logs in {args.database}, {args.repeat} runs a page")
    pages = [measure(page, args.repeat) for page in pages_to_measure(args.rows)]
    results = {
        "benchmark": "admin_scale",
        "command": h.command_line(),
        "date": h.now_iso(),
        "environment": {**h.environment(), "postgresql": server_version()},
        "rows": args.rows,
        "users": args.users,
        "generations": args.generations,
        "repeat": args.repeat,
        "target_ms": TARGET_MS,
        "pages": pages,
    }
    print_table(pages)
    h.write_results(args.output, results)
    print(f"\nwrote {h.display_path(args.output)}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="stream log rows")
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per page (median)")
    parser.add_argument("--database", default="django_sse_admin_scale")
    parser.add_argument("--pghost", default="127.0.0.1", help="PostgreSQL, user postgres")
    parser.add_argument("--refill", action="store_true", help="empty and fill the tables again")
    parser.add_argument("--output", type=Path, default=h.RESULTS / "admin_scale.json")
    args = parser.parse_args()
    if min(args.rows, args.users, args.generations, args.repeat) < 1:
        parser.error("--rows, --users, --generations and --repeat must be at least 1")
    if args.pghost not in ("127.0.0.1", "::1", "localhost"):
        parser.error("--pghost: loopback only")
    args.output = args.output.resolve()
    return args


def create_database(host: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def fill(args: argparse.Namespace) -> None:
    from django.contrib.auth.models import User
    from django.db import connection

    from django_sse.models import Generation, StreamLog

    wanted = (args.rows, args.users, args.generations)
    found = (
        StreamLog.objects.count(),
        User.objects.filter(username__startswith="user").count(),
        Generation.objects.count(),
    )
    if found != wanted or args.refill:
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE django_sse_streamlog, django_sse_generation, auth_user CASCADE"
            )
            cursor.execute("SELECT setseed(0.18)")
            cursor.execute(USERS_SQL, {"users": args.users})
            cursor.execute("SELECT min(id) FROM auth_user")
            first_user = cursor.fetchone()[0]
            values = {**vars(args), "first_user": first_user}
            cursor.execute(LOGS_SQL, values)
            cursor.execute(GENERATIONS_SQL, values)
        print(f"filled in {time.monotonic() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    User.objects.filter(username="bench-admin").delete()
    User.objects.create_superuser("bench-admin", password=None)


def pages_to_measure(rows: int) -> list[Page]:
    from django.utils import timezone

    from django_sse.models import StreamLog

    latest = timezone.localtime(StreamLog.objects.latest("started_at").started_at)
    values = {
        "middle": max(1, rows // 200),
        "middle_completed": max(1, rows // 400),
        "year": latest.year,
        "month": latest.month,
        "day": latest.day,
        "today": latest.date().isoformat(),
        "week_ago": (latest.date() - datetime.timedelta(days=7)).isoformat(),
    }
    return [Page(page.name, page.path.format(**values)) for page in PAGES]


def measure(page: Page, repeat: int) -> dict[str, Any]:
    """Fetch ``page`` once untimed, then ``repeat`` times timed."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(User.objects.get(username="bench-admin"))
    with connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = {PAGE_TIMEOUT_MS}")
    runs = []
    for _ in range(repeat + 1):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(page.path)
            elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{page.path}: HTTP {response.status_code}")
        slowest = max(captured.captured_queries, key=lambda query: float(query["time"]))
        runs.append(
            {
                "ms": round(elapsed_ms, 1),
                "queries": len(captured),
                "slowest_query_ms": round(float(slowest["time"]) * 1000, 1),
                "slowest_query": slowest["sql"],
            }
        )
    timed = runs[1:]
    slowest_run = max(timed, key=lambda run: run["slowest_query_ms"])
    result = {
        "page": page.name,
        "path": page.path,
        "median_ms": round(statistics.median(run["ms"] for run in timed), 1),
        "max_ms": max(run["ms"] for run in timed),
        "queries": timed[-1]["queries"],
        "slowest_query_ms": slowest_run["slowest_query_ms"],
        "slowest_query": slowest_run["slowest_query"],
        "runs": [{key: run[key] for key in ("ms", "queries", "slowest_query_ms")} for run in timed],
    }
    print(f"  {page.name:<38} {result['median_ms']:>8.1f} ms median")
    return result


def server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return str(cursor.fetchone()[0])


def print_table(pages: list[dict[str, Any]]) -> None:
    heading = f"{'page':<38} {'median ms':>9} {'max ms':>8} {'queries':>7} {'slowest':>8}"
    print(f"\n{heading}  slowest query")
    for page in pages:
        flag = "" if page["max_ms"] < TARGET_MS else "  *"
        query = " ".join(page["slowest_query"].split())
        print(
            f"{page['page']:<38} {page['median_ms']:>9.1f} {page['max_ms']:>8.1f} "
            f"{page['queries']:>7} {page['slowest_query_ms']:>8.1f}  {query[:70]}{flag}"
        )
    over = [page["page"] for page in pages if page["max_ms"] >= TARGET_MS]
    print(f"\n* at or over {TARGET_MS:.0f} ms: {', '.join(over) if over else 'none'}")


if __name__ == "__main__":
    sys.exit(main())
