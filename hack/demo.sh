#!/usr/bin/env bash
# The main job: KEDA's behaviour, with keda-rs as the operator, on a real local control plane.
#
# It runs the tutorial behind tests/fixtures/seeds/000_* as written: a Redis list `job-queue`,
# a worker Deployment `keda-worker` at 0 replicas and the tutorial's ScaledObject (redis list
# trigger, listLength 5, activationListLength 1, pollingInterval 5, cooldownPeriod 30). A
# producer pushes jobs in bursts, a worker emulator consumes them for every Ready replica, and
# keda-rs scales the worker 0 -> N -> 0. One line is printed whenever something changes.
# Everything it started is stopped again on exit (also on Ctrl-C or failure).
#
# Needs port 6379 for Redis (the ScaledObject's address). As root it adds
# `127.0.0.1 redis.default.svc` to /etc/hosts for the run; KEDA_RS_DEMO_EDIT_HOSTS=no (or not
# being root) applies a copy of the ScaledObject with the address rewritten instead.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=tests/fixtures/seeds/000_e71a5aed4ada7955 # .yaml: ScaledObject, .support.yaml: Deployment…
NS=default
DEPLOYMENT=keda-worker
SCALEDOBJECT=keda-worker-scaledobject
HPA=keda-hpa-$SCALEDOBJECT # the HPA keda-rs creates for the ScaledObject (named as KEDA does)
LIST=job-queue
REDIS_HOST=redis.default.svc # the host in the ScaledObject's `address: redis.default.svc:6379`
REDIS_PORT=6379
BURSTS=(5:40 20:30 20:30) # producer: wait 5 s, push 40 jobs; 20 s later 30; 20 s later 30
JOB_SECONDS=2             # a Ready worker replica finishes one job every 2 s (as worker.py)
TIMEOUT=360               # seconds the scaling part may take before the demo gives up

log() { printf '\n== %s\n' "$*"; }
die() {
  printf 'demo: %s\n' "$*" >&2
  exit 1
}

# --- teardown -------------------------------------------------------------------------------------
# Every component records its pid (or state) here as it starts; cleanup stops only those.
STATE="" UP_PID="" REDIS_PID="" OPERATOR_PID="" PRODUCER_PID="" WORKER_PID=""
HOSTS_LINE="" STOPPED_SYSTEM_REDIS=""

# True while PID runs (a zombie child, exited but not yet reaped, does not count).
alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# stop PID [group]: SIGTERM (to the whole process group with `group`), SIGKILL after 10 s.
stop() {
  local pid=$1 target=$1
  [[ -n $pid ]] || return 0
  [[ ${2:-} == group ]] && target=-$pid
  kill -TERM -- "$target" 2>/dev/null || true
  for _ in $(seq 1 50); do
    alive "$pid" || break
    sleep 0.2
  done
  kill -KILL -- "$target" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM HUP
  [[ -n $STATE ]] && log "tearing down"
  # The load generators are process groups (setsid): stopping the group also stops the
  # kubectl/redis-cli/sleep they are running at that moment.
  stop "$PRODUCER_PID" group
  stop "$WORKER_PID" group
  # On a failure (not on Ctrl-C) the operator's last words may say why.
  if ((status != 0 && status < 128)) && [[ -s $STATE/operator.log ]]; then
    echo "-- last lines of the operator log ($STATE/operator.log):" >&2
    tail -n 30 "$STATE/operator.log" >&2
  fi
  [[ -n $OPERATOR_PID ]] && echo "stopping keda-rs operator (pid $OPERATOR_PID)"
  stop "$OPERATOR_PID"
  [[ -n $REDIS_PID ]] && echo "stopping redis-server (pid $REDIS_PID)"
  stop "$REDIS_PID"
  remove_hosts_line
  if [[ -n $UP_PID ]]; then
    echo "stopping the control plane"
    "${CARGO_TARGET_DIR:-target}"/debug/keda-rs-cluster down --dir "$STATE" || stop "$UP_PID"
    wait "$UP_PID" 2>/dev/null
  fi
  if [[ -n $STOPPED_SYSTEM_REDIS ]]; then
    echo "starting the system redis-server again"
    system_redis start
  fi
  [[ -n $STATE ]] && rm -rf "$STATE"
  exit "$status"
}
trap cleanup EXIT
# Signals end the script through `exit`, so the EXIT trap runs for them too.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- Redis on 127.0.0.1:6379 ----------------------------------------------------------------------
SUDO=""
((EUID == 0)) || SUDO=sudo

# system_redis start|stop|active: Debian's redis-server service (systemd, or its init script).
system_redis() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    case $1 in
      active) systemctl is-active --quiet redis-server ;;
      *) $SUDO systemctl "$1" redis-server ;;
    esac
  else
    case $1 in
      active) service redis-server status >/dev/null 2>&1 ;;
      *)
        # Quiet unless it fails (the init script warns about ulimit in containers).
        local out
        out=$($SUDO service redis-server "$1" 2>&1) || {
          echo "$out" >&2
          return 1
        }
        ;;
    esac
  fi
}

# The ScaledObject names port 6379, so our redis-server needs exactly that port. Debian's
# redis-server package starts a system Redis there: stop it for the demo (and start it again
# on exit). Anything else on 6379 is not ours to stop.
claim_redis_port() {
  local owner
  owner=$(ss -Hltnp "sport = :$REDIS_PORT")
  [[ -z $owner ]] && return 0
  # (Not root, ss cannot name the owner; the active service is then taken to be it.)
  if system_redis active && [[ $owner == *'"redis-server"'* || $EUID -ne 0 ]]; then
    log "stopping the system redis-server on port $REDIS_PORT (started again on exit)"
    system_redis stop
    STOPPED_SYSTEM_REDIS=1
    for _ in $(seq 1 50); do
      [[ -z $(ss -Hltn "sport = :$REDIS_PORT") ]] && return 0
      sleep 0.2
    done
  fi
  die "port $REDIS_PORT is in use by something else:
  ${owner:-?}
The demo runs its own Redis there, because the tutorial's ScaledObject says
address: \"$REDIS_HOST:$REDIS_PORT\". Stop that process and run hack/demo.sh again
(for Debian's own Redis: sudo service redis-server stop)."
}

start_redis() {
  # Loopback only, nothing persisted; the log goes to the state folder.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --daemonize no --dir "$STATE" --logfile "$STATE/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 1 50); do
    [[ $(redis PING 2>/dev/null) == PONG ]] && return 0
    alive "$REDIS_PID" || break
    sleep 0.2
  done
  cat "$STATE/redis.log" >&2
  die "redis-server did not start"
}

redis() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# --- making `redis.default.svc` reach that Redis ------------------------------------------------
# The operator runs on this host, where there is no cluster DNS. As root, one /etc/hosts line
# makes the tutorial's address resolve to loopback, so the ScaledObject is applied unchanged.
# Otherwise the address is rewritten in a temporary copy of the manifest.
SCALEDOBJECT_FILE=$SEED.yaml
EDIT_HOSTS=${KEDA_RS_DEMO_EDIT_HOSTS:-yes}
point_redis_host_at_loopback() {
  if [[ $(getent ahostsv4 "$REDIS_HOST" 2>/dev/null | awk 'NR == 1 {print $1}') == 127.0.0.1 ]]; then
    echo "$REDIS_HOST already resolves to 127.0.0.1"
  elif ((EUID == 0)) && [[ $EDIT_HOSTS == yes ]]; then
    # Make sure our line starts on a line of its own.
    [[ -z $(tail -c 1 /etc/hosts) ]] || echo >>/etc/hosts
    HOSTS_LINE="127.0.0.1 $REDIS_HOST # added by keda-rs hack/demo.sh (pid $$), removed on exit"
    printf '%s\n' "$HOSTS_LINE" >>/etc/hosts
    echo "added to /etc/hosts: $HOSTS_LINE"
  else
    SCALEDOBJECT_FILE=$STATE/scaledobject.yaml
    sed "s/$REDIS_HOST:$REDIS_PORT/127.0.0.1:$REDIS_PORT/" "$SEED.yaml" >"$SCALEDOBJECT_FILE"
    if ((EUID == 0)); then echo "KEDA_RS_DEMO_EDIT_HOSTS=$EDIT_HOSTS: /etc/hosts stays untouched;"
    else echo "not root, so /etc/hosts stays untouched;"; fi
    echo "the ScaledObject is applied from a copy whose address is 127.0.0.1:$REDIS_PORT"
    echo "instead of $REDIS_HOST:$REDIS_PORT"
  fi
}

remove_hosts_line() {
  [[ -n $HOSTS_LINE ]] || return 0
  # Remove exactly our line. Rewrite the file in place (not sed -i, which replaces the file):
  # /etc/hosts is often a bind mount.
  local kept
  kept=$(mktemp)
  grep -vxF -- "$HOSTS_LINE" /etc/hosts >"$kept" || true
  cat "$kept" >/etc/hosts
  rm -f "$kept"
  echo "removed from /etc/hosts: $HOSTS_LINE"
}

# --- the control plane ----------------------------------------------------------------------------
start_control_plane() {
  "${CARGO_TARGET_DIR:-target}"/debug/keda-rs-cluster up --dir "$STATE" >"$STATE/up.log" 2>&1 &
  UP_PID=$!
  for _ in $(seq 1 600); do
    [[ -f $STATE/ready ]] && break
    alive "$UP_PID" || {
      cat "$STATE/up.log" >&2
      die "the control plane failed to start"
    }
    sleep 0.2
  done
  [[ -f $STATE/ready ]] || die "the control plane did not become ready"
  export KUBECONFIG=$STATE/kubeconfig
}

kubectl() { "$KUBECTL" "$@"; }

# wait_for CONDITION TIMEOUT RESOURCE...: until every RESOURCE has status condition CONDITION
# True. (A polling loop rather than `kubectl wait`, which fails outright on an object whose
# status has no conditions yet.)
wait_for() {
  local condition=$1 timeout=$2 resource status i
  shift 2
  for resource in "$@"; do
    for ((i = 0; ; i++)); do
      status=$(kubectl get "$resource" \
        -o jsonpath="{.status.conditions[?(@.type==\"$condition\")].status}" 2>/dev/null) || true
      [[ $status == True ]] && break
      ((i < timeout * 2)) || {
        echo "$resource did not become $condition within ${timeout}s:" >&2
        kubectl get "$resource" -o yaml >&2 || true
        return 1
      }
      sleep 0.5
    done
  done
}

# The apiserver reaches aggregated APIs through a Service. keda-rs runs on this host, so the
# Service is an ExternalName pointing at localhost, and the APIService names the operator's port
# directly (for ExternalName the port is dialed as is). Created before the operator starts, so
# that the operator finds the APIService and writes its CA into it.
register_metrics_apiservice() {
  kubectl apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: keda
---
apiVersion: v1
kind: Service
metadata:
  name: keda-metrics-apiserver
  namespace: keda
spec:
  type: ExternalName
  externalName: localhost
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.external.metrics.k8s.io
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service:
    name: keda-metrics-apiserver
    namespace: keda
    port: $METRICS_PORT
EOF
}

start_operator() {
  # NO_COLOR: plain text in the log file. Everything on loopback: the defaults for /metrics
  # and the probes (0.0.0.0:8080/8081) are meant for a pod, and may be taken on a workstation.
  NO_COLOR=1 "${CARGO_TARGET_DIR:-target}"/debug/keda-rs operator --metrics-api-bind-address "127.0.0.1:$METRICS_PORT" \
    --enable-apiservice-patching=true \
    --metrics-bind-address "127.0.0.1:$PROMETHEUS_PORT" \
    --health-probe-bind-address "127.0.0.1:$PROBES_PORT" >"$STATE/operator.log" 2>&1 &
  OPERATOR_PID=$!
  echo "keda-rs operator running (pid $OPERATOR_PID), log: $STATE/operator.log"
  echo "its Prometheus metrics: http://127.0.0.1:$PROMETHEUS_PORT/metrics"
  # Available once the apiserver reaches the operator over TLS with the CA it patched in.
  wait_for Available 60 apiservice/v1beta1.external.metrics.k8s.io ||
    die "the external-metrics API did not become available"
  echo "APIService v1beta1.external.metrics.k8s.io is Available"
}

# The tutorial's worker Deployment, taken from the seed's support manifests. They also hold the
# tutorial's Redis Deployment/Service and producer CronJob, which need real containers; the
# Redis, the producer and the worker's consumption are emulated on this host instead. The label
# selector picks the worker out of the file (only it carries app=keda-worker); checked first.
apply_worker_deployment() {
  local picked
  picked=$(kubectl apply --dry-run=client -o name -l "app=$DEPLOYMENT" -f "$SEED.support.yaml")
  [[ $picked == "deployment.apps/$DEPLOYMENT" ]] ||
    die "expected only deployment.apps/$DEPLOYMENT from $SEED.support.yaml, got: $picked"
  kubectl apply -l "app=$DEPLOYMENT" -f "$SEED.support.yaml"
}

# --- watching the scaling -------------------------------------------------------------------------
declare -A SEEN_EVENTS=()
# Prints KEDA's activation events (and its warnings, which say why scaling does not happen)
# the first time they are seen.
print_new_events() {
  local key type reason note
  while IFS='|' read -r key type reason note; do
    case $reason in
      KEDAScaleTargetActivated | KEDAScaleTargetDeactivated) ;;
      KEDA*) [[ $type == Warning ]] || continue ;;
      *) continue ;;
    esac
    [[ -z ${SEEN_EVENTS[$key]:-} ]] || continue
    SEEN_EVENTS[$key]=1
    printf '%5ss  event %s: %s\n' "$(elapsed)" "$reason" "$note"
  done < <(kubectl get events.events.k8s.io -n "$NS" -o jsonpath='{range .items[*]}{.metadata.name}/{.metadata.resourceVersion}{"|"}{.type}{"|"}{.reason}{"|"}{.note}{"\n"}{end}' 2>/dev/null)
}

elapsed() { echo $((EPOCHSECONDS - DEMO_START)); }

# Polls once a second and prints a line whenever one of the columns changes. Returns once the
# worker went 0 -> N (N >= 2) -> 0 with the producer done and the queue empty; fails after
# TIMEOUT seconds.
watch_scaling() {
  local queue="" replicas="" ready desired active row last="" peak=0
  printf '%6s  %5s  %8s  %5s  %11s  %6s\n' time queue replicas ready hpa-desired active
  while true; do
    if (($(elapsed) > TIMEOUT)); then
      die "timed out after ${TIMEOUT}s: $DEPLOYMENT did not go 0 -> N (>= 2) -> 0" \
        "(peak: $peak replicas; last seen: queue ${queue:-?}, replicas ${replicas:-?})"
    fi
    queue=$(redis LLEN "$LIST")
    replicas="" ready=""
    read -r replicas ready < <(kubectl get deployment "$DEPLOYMENT" -n "$NS" \
      -o jsonpath='{.spec.replicas} {.status.readyReplicas}{"\n"}') || true
    desired=$(kubectl get hpa "$HPA" -n "$NS" --ignore-not-found \
      -o jsonpath='{.status.desiredReplicas}') || true
    active=$(kubectl get scaledobject "$SCALEDOBJECT" -n "$NS" \
      -o jsonpath='{.status.conditions[?(@.type=="Active")].status}') || true
    if [[ -z $replicas ]]; then # the read failed (apiserver busy?): try again next second
      sleep 1
      continue
    fi
    row=$(printf '%5s  %8s  %5s  %11s  %6s' "$queue" "$replicas" "${ready:-0}" "${desired:--}" "${active:--}")
    if [[ $row != "$last" ]]; then
      printf '%5ss  %s\n' "$(elapsed)" "$row"
      last=$row
    fi
    print_new_events
    ((replicas > peak)) && peak=$replicas
    # Forget a finished producer, so cleanup cannot signal a reused pid.
    [[ -n $PRODUCER_PID ]] && ! alive "$PRODUCER_PID" && PRODUCER_PID=""
    # Done: the worker went up to >= 2 replicas and back to 0, all jobs were pushed and
    # consumed, and the HPA has seen the 0 too (desired 0).
    if ((peak >= 2 && replicas == 0 && queue == 0)) && [[ ${desired:-0} == 0 && -z $PRODUCER_PID ]]; then
      PEAK=$peak
      return 0
    fi
    sleep 1
  done
}

# --- main -----------------------------------------------------------------------------------------
log "installing what is missing (Debian packages; the control plane, built once and cached)"
hack/install-deps.sh
BIN_DIR=$(hack/build-control-plane.sh | tail -n 1)
export KEDA_RS_CONTROL_PLANE_BIN=$BIN_DIR
KUBECTL="$BIN_DIR/kubectl"
echo "building keda-rs and keda-rs-cluster (cargo build)"
# -p: the workspace root is a package of its own (the end-to-end tests).
cargo build --quiet -p keda-rs -p test-cluster --bin keda-rs --bin keda-rs-cluster

claim_redis_port
STATE=$(mktemp -d -t keda-rs-demo.XXXXXX)
# Free loopback ports for the operator: the external-metrics API, /metrics and the probes.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
METRICS_PORT=$(free_port) PROMETHEUS_PORT=$(free_port) PROBES_PORT=$(free_port)

log "starting the control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK)"
start_control_plane
echo "control plane up: $(cat "$STATE/ready")"
kubectl get nodes

log "installing the keda.sh CRDs (keda-rs crds | kubectl apply)"
"${CARGO_TARGET_DIR:-target}"/debug/keda-rs crds | kubectl apply --server-side -f -
mapfile -t CRDS < <(kubectl get crd -o name)
wait_for Established 60 "${CRDS[@]}" || die "the CRDs were not established"
echo "checking the tutorial's ScaledObject offline (keda-rs validate)"
"${CARGO_TARGET_DIR:-target}"/debug/keda-rs validate -f "$SEED.yaml"

log "starting Redis on 127.0.0.1:$REDIS_PORT (the tutorial's job queue)"
start_redis
point_redis_host_at_loopback

log "starting the keda-rs operator; it serves external.metrics.k8s.io on 127.0.0.1:$METRICS_PORT"
register_metrics_apiservice
start_operator

log "applying the tutorial's worker Deployment (0 replicas) and its ScaledObject"
apply_worker_deployment
kubectl apply -f "$SCALEDOBJECT_FILE"
wait_for Ready 60 "scaledobject/$SCALEDOBJECT" || die "the ScaledObject did not become Ready"
kubectl get deployment "$DEPLOYMENT"
kubectl get scaledobject "$SCALEDOBJECT"

log "load: producer bursts ${BURSTS[*]} (wait s:jobs); each Ready worker replica consumes a job every ${JOB_SECONDS}s"
cat <<EOF
Columns: queue = LLEN $LIST; replicas = the Deployment's spec.replicas (set by keda-rs and
the HPA); ready = its Ready replicas (KWOK marks pods Ready); hpa-desired = desiredReplicas of
the HPA keda-rs created; active = the ScaledObject's Active condition (more than
activationListLength = 1 job queued when keda-rs last polled; it polls every 5 s).
keda-rs takes the worker 0 -> 1 itself when the trigger activates; the HPA takes it 1 -> N in
steps (one replica per listLength = 5 queued jobs) and keeps N while the queue is empty (its
5-minute scale-down stabilization); keda-rs takes it to 0 once the trigger has been inactive
for cooldownPeriod = 30 s.

EOF
DEMO_START=$EPOCHSECONDS
NAMESPACE=$NS
export DEMO_START REDIS_PORT LIST KUBECTL NAMESPACE DEPLOYMENT JOB_SECONDS
# setsid: each loop is its own process group, so cleanup stops it together with its children.
setsid hack/demo/worker.sh &
WORKER_PID=$!
setsid hack/demo/producer.sh "${BURSTS[@]}" &
PRODUCER_PID=$!
PEAK=0
watch_scaling

log "done: $DEPLOYMENT went 0 -> $PEAK -> 0 replicas in $(elapsed)s (queue drained, cooldown passed)"
