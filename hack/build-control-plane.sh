#!/usr/bin/env bash
# Builds the test control plane from the Go module proxy and caches it outside the repo:
#   $KEDA_RS_CACHE/k8s-$KV/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,etcd,kwok,stages.yaml}
# A directory that already holds every binary (marked by .complete) is reused as is.
set -euo pipefail

KV=${KEDA_RS_K8S_VERSION:-v1.37.2}
KWOK_VERSION=${KEDA_RS_KWOK_VERSION:-v0.8.0}
CACHE=${KEDA_RS_CACHE:-$HOME/.cache/keda-rs}
OUT=$CACHE/k8s-$KV-kwok-$KWOK_VERSION
if [[ -f $OUT/.complete ]]; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "go (>= 1.26) is required to build the control plane" >&2; exit 1; }
SV=v0.${KV#v1.}
MINOR=${KV#v1.}; MINOR=${MINOR%%.*}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$OUT"
log() { echo "[build-control-plane] $*" >&2; }

# --- kube-apiserver, kube-controller-manager, kube-scheduler, kubectl -----------------------------
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cd "$W"
mkdir k8s && cd k8s
go mod init k8sbins.invalid >/dev/null 2>&1
GOMOD=$(go mod download -json "k8s.io/kubernetes@$KV" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
# Staging modules are required at v0.0.0 upstream and replaced by local paths; map them to their tags.
for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$GOMOD" | sort -u); do
  go mod edit -replace="$m=$m@$SV"
done
for g in $(sed -n 's/^godebug[[:space:]]\+//p' "$GOMOD"); do go mod edit -godebug="$g"; done
log "resolving k8s.io/kubernetes@$KV"
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$KV" \
  "k8s.io/kubernetes/cmd/kube-controller-manager@$KV" \
  "k8s.io/kubernetes/cmd/kube-scheduler@$KV" \
  "k8s.io/kubernetes/cmd/kubectl@$KV" >&2
V=k8s.io/component-base/version
CV=k8s.io/client-go/pkg/version
LDF="-s -w -X $V.gitVersion=$KV -X $V.gitMajor=1 -X $V.gitMinor=$MINOR -X $V.gitTreeState=clean"
LDF="$LDF -X $CV.gitVersion=$KV -X $CV.gitMajor=1 -X $CV.gitMinor=$MINOR -X $CV.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  log "building $cmd"
  go build -trimpath -ldflags "$LDF" -o "$OUT/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
EV=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)

# --- etcd at the version this Kubernetes release pins ---------------------------------------------
cd "$W" && mkdir etcd && cd etcd
go mod init etcdbin.invalid >/dev/null 2>&1
log "building etcd $EV"
go get -tool "go.etcd.io/etcd/server/v3@$EV" >&2
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3

# --- kwok and the stages kwokctl would inject ----------------------------------------------------
cd "$W" && mkdir kwok && cd kwok
go mod init kwokbin.invalid >/dev/null 2>&1
log "building kwok $KWOK_VERSION"
go get -tool "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
go build -trimpath -ldflags "-s -w" -o "$OUT/kwok" sigs.k8s.io/kwok/cmd/kwok
KWOK_SRC=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
: > "$OUT/stages.yaml"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  { cat "$KWOK_SRC/kustomize/stage/$f"; echo '---'; } >> "$OUT/stages.yaml"
done

echo "$EV" > "$OUT/etcd.version"
touch "$OUT/.complete"
log "done: $OUT"
echo "$OUT"
