"""Doctest collection of ``app/`` (``--doctest-modules``) on a machine without the spark extra:
the Spark integration's modules import pyspark (or pandas) at the top, so they are left out
there; ``tests/test_spark.py`` skips with the reason. The rest of ``app/`` never imports them."""

from __future__ import annotations

import importlib.util

collect_ignore_glob: list[str] = []
if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("pandas") is None:
    collect_ignore_glob = [
        "app/integrations/spark.py",
        "app/integrations/spark_io.py",
        "app/integrations/spark_report.py",
        "app/integrations/spark_rows.py",
        "app/integrations/spark_worker.py",
    ]
