#!/usr/bin/env bash
# The main job: a local control plane with keda-rs' CRDs and the seed manifests.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-deps.sh
BIN_DIR=$(hack/build-control-plane.sh | tail -n 1)
export KEDA_RS_CONTROL_PLANE_BIN=$BIN_DIR
cargo build --quiet --bin keda-rs --bin keda-rs-cluster
KUBECTL="$BIN_DIR/kubectl"

STATE=$(mktemp -d -t keda-rs-demo.XXXXXX)
target/debug/keda-rs-cluster up --dir "$STATE" >"$STATE/up.log" 2>&1 &
UP_PID=$!
cleanup() {
  echo "== stopping the control plane"
  target/debug/keda-rs-cluster down --dir "$STATE" || kill "$UP_PID" 2>/dev/null || true
  wait "$UP_PID" 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  [[ -f $STATE/ready ]] && break
  kill -0 "$UP_PID" 2>/dev/null || { cat "$STATE/up.log" >&2; exit 1; }
  sleep 0.2
done
export KUBECONFIG=$STATE/kubeconfig

echo "== control plane up: $(cat "$STATE/ready")"
"$KUBECTL" get nodes
echo "== installing the keda.sh CRDs (keda-rs crds | kubectl apply)"
target/debug/keda-rs crds | "$KUBECTL" apply --server-side -f -
"$KUBECTL" wait --for condition=Established crd --all --timeout=60s >/dev/null
echo "== validating the seed manifests offline"
target/debug/keda-rs validate -f tests/fixtures/seeds
echo "== applying the seed manifests"
"$KUBECTL" create namespace production >/dev/null
for f in tests/fixtures/seeds/*.yaml; do
  case $f in *.support.yaml) continue ;; esac
  "$KUBECTL" apply -f "$f"
done
"$KUBECTL" get scaledobjects,scaledjobs,triggerauthentications -A
