#!/usr/bin/env bash
# The demo's worker emulator. KWOK runs no containers, so the worker Deployment's pods do no
# work; this loop does it for them. Every second it pops, for each Ready replica of the
# Deployment, the jobs that replica finished in that second: one job per JOB_SECONDS, as the
# tutorial's worker.py spends 2 s (`time.sleep(2)`) on each job. With 0 replicas nothing is
# consumed, which is why KEDA has to scale up from zero.
#
# Environment: KUBECTL, KUBECONFIG, DEPLOYMENT (keda-worker), NAMESPACE (default),
# JOB_SECONDS (2), REDIS_PORT (6379), LIST (job-queue).
set -euo pipefail

KUBECTL=${KUBECTL:?KUBECTL must point at kubectl}
DEPLOYMENT=${DEPLOYMENT:-keda-worker}
NAMESPACE=${NAMESPACE:-default}
JOB_SECONDS=${JOB_SECONDS:-2}
REDIS_PORT=${REDIS_PORT:-6379}
LIST=${LIST:-job-queue}

work=0 # replica-seconds of work done but not yet a whole job
while true; do
  # readyReplicas is absent (empty) while no pod is Ready; a failed read counts as 0.
  ready=$("$KUBECTL" get deployment "$DEPLOYMENT" -n "$NAMESPACE" \
    -o jsonpath='{.status.readyReplicas}' 2>/dev/null) || ready=0
  work=$((work + ${ready:-0}))
  done_jobs=$((work / JOB_SECONDS))
  work=$((work % JOB_SECONDS))
  if ((done_jobs > 0)); then
    # LPOP with a count (Redis >= 6.2) pops up to that many jobs at once.
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" LPOP "$LIST" "$done_jobs" >/dev/null || true
  fi
  sleep 1
done
