#!/usr/bin/env bash
# The crash test three times in a row (SIGKILL of the whole service mid-job, restart, every
# row exactly once). Stops at the first failure. Usage: bench/crash_test_x3.sh [-k EXPR]
# Default: the real-pipeline test (needs models/current.json; pytest reports it skipped
# otherwise) plus the fake-sentiment variant and the killed-worker test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
K=${1:-}
[ "$K" = "-k" ] && EXPR=$2 || EXPR="crash or killed_worker"
for i in 1 2 3; do
  echo "=== crash test run $i/3 ==="
  start=$(date +%s)
  $PY -m pytest tests/test_jobs_crash.py -o addopts="" -q -p no:cacheprovider -rs -k "$EXPR"
  echo "=== run $i passed in $(( $(date +%s) - start )) s ==="
done
echo "crash test: 3/3 runs passed"
