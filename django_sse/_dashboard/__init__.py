"""The StreamLog admin's live dashboard: open streams now, and the last 24 hours in charts.

Private to the admin (``StreamLogAdmin.get_urls()`` mounts it), in modules of one job
each: what is open (``open_streams``), the day's aggregates (``activity``, with the
percentile arithmetic in ``durations``), the charts drawn from them (``svg``), and the
page and its event stream (``views``).
"""
