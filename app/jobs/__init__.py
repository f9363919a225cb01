"""Large batch jobs that survive crashes.

``ingest`` spools and validates an upload into a work file cut into chunks; ``store``
keeps jobs, chunk leases, results and report counters (SQLite behind ``JobStore``);
``scoring`` turns one chunk into result rows plus report counters; ``worker`` runs
scoring in background processes; ``report`` builds the 差评报表; ``export`` streams results.
"""
