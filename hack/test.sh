#!/usr/bin/env bash
# Runs every test: installs dependencies, builds (or reuses) the control plane, starts one
# control plane shared by all test binaries, runs the workspace's tests, stops it again.
# With CI=true it also enforces formatting and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-deps.sh
hack/fetch-kafka.sh >/dev/null
BIN_DIR=$(hack/build-control-plane.sh | tail -n 1)
KEDA_RS_MOTO_DIR=$(hack/install-moto.sh | tail -n 1)
export KEDA_RS_MOTO_DIR
export KEDA_RS_CONTROL_PLANE_BIN=$BIN_DIR
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

if [[ ${CI:-} == "true" ]]; then
  cargo fmt --all --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

cargo build --workspace --all-targets --locked

STATE=$(mktemp -d -t keda-rs-test-cluster.XXXXXX)
"${CARGO_TARGET_DIR:-target}"/debug/keda-rs-cluster up --dir "$STATE" >"$STATE/up.log" 2>&1 &
UP_PID=$!
cleanup() {
  "${CARGO_TARGET_DIR:-target}"/debug/keda-rs-cluster down --dir "$STATE" || kill "$UP_PID" 2>/dev/null || true
  wait "$UP_PID" 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  [[ -f $STATE/ready ]] && break
  if ! kill -0 "$UP_PID" 2>/dev/null; then
    echo "the test control plane failed to start:" >&2
    cat "$STATE/up.log" >&2
    exit 1
  fi
  sleep 0.2
done
[[ -f $STATE/ready ]] || { echo "the test control plane did not become ready" >&2; cat "$STATE/up.log" >&2; exit 1; }
export KEDA_RS_TEST_KUBECONFIG=$STATE/kubeconfig

cargo test --workspace --locked "$@"
