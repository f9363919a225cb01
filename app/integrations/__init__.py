"""Engines outside the service that call the pipeline: Apache Spark (:mod:`app.integrations.spark`).

Only the command line imports this package (``pingjia spark-score``), and only this package
imports ``pyspark``: the service, the jobs and the pipeline run without it
(``tests/test_layers.py`` checks both).
"""
