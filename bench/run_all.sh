#!/usr/bin/env bash
# Rerun every benchmark and write its tables to bench/results/ (about 30 minutes on the shared 2-core CPU).
# Usage: bench/run_all.sh [extra args for every script, e.g. --threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
for name in capture_cost compute_efficiency analyses_scaling memory view_change browser_latency attribution_methods; do
  echo "=== $name"
  python "bench/$name.py" --out "bench/results/$name.md" "$@"
done
