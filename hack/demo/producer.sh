#!/usr/bin/env bash
# The demo's producer: pushes jobs onto the Redis list in bursts, like the tutorial's producer
# CronJob (`redis-cli rpush job-queue job-$now`) but with bigger batches, so that KEDA has a
# backlog to scale on.
#
#   producer.sh WAIT:COUNT ...     e.g. 5:40 20:25 20:15 = after 5 s push 40 jobs, 20 s later
#                                  25 more, 20 s after that 15 more
#
# Environment: REDIS_PORT (6379), LIST (job-queue), DEMO_START (epoch second the demo's time
# column counts from).
set -euo pipefail

REDIS_PORT=${REDIS_PORT:-6379}
LIST=${LIST:-job-queue}
DEMO_START=${DEMO_START:-$EPOCHSECONDS}

burst=0
for step in "$@"; do
  wait_s=${step%%:*} count=${step#*:}
  sleep "$wait_s"
  burst=$((burst + 1))
  jobs=()
  for ((n = 1; n <= count; n++)); do jobs+=("job-$burst-$n"); done
  # One RPUSH for the whole burst; it answers with the list's new length.
  length=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" RPUSH "$LIST" "${jobs[@]}")
  printf '%5ss  producer: burst %d, RPUSH %d jobs onto %s (length now %s)\n' \
    "$((EPOCHSECONDS - DEMO_START))" "$burst" "$count" "$LIST" "$length"
done
