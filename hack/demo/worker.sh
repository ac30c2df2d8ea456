#!/usr/bin/env bash
# The demo's worker emulator. KWOK runs no containers, so the worker Deployment's pods do no
# work; this loop does it for them: every second it pops RATE jobs per Ready replica of the
# Deployment. With 0 replicas nothing is consumed, which is why KEDA must scale up from zero.
#
# Environment: KUBECTL, KUBECONFIG, DEPLOYMENT (keda-worker), NAMESPACE (default),
# RATE (jobs per second per ready replica, 2), REDIS_PORT (6379), LIST (job-queue).
set -euo pipefail

KUBECTL=${KUBECTL:?KUBECTL must point at kubectl}
DEPLOYMENT=${DEPLOYMENT:-keda-worker}
NAMESPACE=${NAMESPACE:-default}
RATE=${RATE:-2}
REDIS_PORT=${REDIS_PORT:-6379}
LIST=${LIST:-job-queue}

while true; do
  # readyReplicas is absent (empty) while no pod is Ready; a failed read counts as 0.
  ready=$("$KUBECTL" get deployment "$DEPLOYMENT" -n "$NAMESPACE" \
    -o jsonpath='{.status.readyReplicas}' 2>/dev/null) || ready=0
  take=$((RATE * ${ready:-0}))
  if ((take > 0)); then
    # LPOP with a count (Redis >= 6.2) pops up to that many jobs at once.
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" LPOP "$LIST" "$take" >/dev/null || true
  fi
  sleep 1
done
