#!/usr/bin/env bash
# Regenerate published suites from an empty model cache, timing training and the run per suite: the
# selected jobs' results are removed first (bench prune --jobs), so every one of them is computed again.
# Usage: benchmarks/regenerate.sh SUITE[:PATTERN]... (nothing else may run: 2 cores, fixed 2-thread
# numerics); PATTERN (bench's --jobs) limits training and the run to some tracks, e.g. 'fashion-mnist/*'.
# Times go to stdout as "suite <name> train <s> run <s>"; the cache is $GRADBENCH_CACHE (default: a
# fresh folder under /tmp, so nothing trained before is reused).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONHASHSEED=0
export GRADBENCH_CACHE="${GRADBENCH_CACHE:-$(mktemp -d /tmp/gradbench-regen.XXXXXX)}"
BENCH="${BENCH:-.venv/bin/bench}"
echo "cache $GRADBENCH_CACHE"
for arg in "$@"; do
    suite="${arg%%:*}"
    pattern="*"
    [[ "$arg" == *:* ]] && pattern="${arg#*:}"
    "$BENCH" prune "$suite" --jobs "$pattern" >/dev/null
    t0=$(date +%s)
    "$BENCH" train "$suite" --twins --quiet --jobs "$pattern"
    t1=$(date +%s)
    "$BENCH" run "$suite" --jobs "$pattern" --quiet || echo "suite $suite: some jobs failed (see results/$suite/_failures)"
    t2=$(date +%s)
    echo "suite $suite ($pattern) train $((t1 - t0)) s, run $((t2 - t1)) s"
done
