"""Views and an ASGI wrapper for the lifecycle race suite (tests/e2e/test_lifecycle_races.py).

Every stream carries a token (``?t=``). The server process writes what happened to each
one to a journal (journal.py): the request's start and end and any ``http.disconnect``
the application received (asgi.py), the generator's start and its ``finally``, and each
``on_close`` call with its outcome (views.py). Gates (asyncio.Events opened through
``/races/open/``) hold a stream at a chosen point, and ``/races/wait/`` awaits marks in
the journal, so a test steers a race without sleeping.
"""
