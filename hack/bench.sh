#!/usr/bin/env bash
# Runs the benchmark protocol's "redis-list-N" workload (/work/shared/spec/benchmark-protocol.md)
# against keda-rs for N=100 and N=1000: each run starts its own control plane, redis-server and
# operator process, measures, and tears everything down again. Results go to bench-results/.
#
#   hack/bench.sh                      # N=100 and N=1000, 300 s windows (the protocol's minimum)
#   hack/bench.sh --window 60          # shorter windows, for a quick look
#   hack/bench.sh --objects "100"      # only some sizes
#   hack/bench.sh -- --activation-trials 5   # anything after -- goes to keda-rs-bench
set -euo pipefail
cd "$(dirname "$0")/.."

WINDOW=300
SIZES="100 1000"
EXTRA=()
while (($#)); do
  case $1 in
    --window) WINDOW=$2; shift 2 ;;
    --window=*) WINDOW=${1#*=}; shift ;;
    --objects) SIZES=$2; shift 2 ;;
    --objects=*) SIZES=${1#*=}; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

hack/install-deps.sh
BIN_DIR=$(hack/build-control-plane.sh | tail -n 1)
export KEDA_RS_CONTROL_PLANE_BIN=$BIN_DIR
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# What the binaries are built from (others may commit while the benchmarks run).
BUILD_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]] && BUILD_COMMIT="$BUILD_COMMIT (dirty)"
export KEDA_RS_BENCH_BUILD_COMMIT=$BUILD_COMMIT
cargo build --release -j2 -p keda-rs -p keda-rs-bench

mkdir -p bench-results
export KEDA_RS_BENCH_INVOKED_BY="hack/bench.sh --window $WINDOW --objects \"$SIZES\""
status=0
written=()
for n in $SIZES; do
  out=bench-results/redis-list-$n.md
  echo "== redis-list-$n (window ${WINDOW} s) -> $out" >&2
  target/release/keda-rs-bench redis-list --objects "$n" --window-secs "$WINDOW" --out "$out" \
    ${EXTRA[@]+"${EXTRA[@]}"} || status=$?
  [[ -f $out ]] && written+=("$out")
done

echo
echo "Results:"
for f in "${written[@]}"; do echo "  $f"; done
exit "$status"
