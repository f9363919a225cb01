"""Large batch jobs that survive crashes.

``upload`` spools a request body to a private file; ``ingest`` validates it into a work
file cut into chunks, reading records with ``readers``, profiling extra columns with
``columns`` and writing ``workfile`` rows; ``store`` keeps jobs, chunk leases, results and
report counters (SQLite behind ``JobStore``); ``scoring`` turns one chunk into result rows
plus report counters; ``worker`` runs scoring in background processes; ``report`` builds
the 差评报表; ``export`` streams results.
"""
