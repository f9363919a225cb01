"""Doctest collection of ``app/`` (``--doctest-modules``) on a machine without the spark extra:
the Spark integration's modules that import pyspark (spark.py, spark_io.py, spark_report.py)
or pandas (spark_worker.py) at the top are left out there; ``tests/test_spark.py`` skips with
the reason. spark_rows.py and the rest of ``app/`` never import them: always collected."""

from __future__ import annotations

import importlib.util

collect_ignore_glob: list[str] = []
if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("pandas") is None:
    collect_ignore_glob = [
        "app/integrations/spark.py",
        "app/integrations/spark_io.py",
        "app/integrations/spark_report.py",
        "app/integrations/spark_worker.py",
    ]
