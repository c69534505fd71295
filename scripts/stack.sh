#!/usr/bin/env bash
# The local stack: engines, migrations and the five services, each a background process with its
# PID under .dev/run and its log under .dev/logs. Safe to re-run: running parts are left alone.
#   scripts/stack.sh up|down|health
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dev_env.sh; load_dev_env
DEV=$PWD/$OBS_DEV_DIR
PY=$PWD/.venv/bin/python
SERVICES=(ingestion query prompts evals gateway)
mkdir -p "$DEV/run" "$DEV/logs"

alive() { [ -f "$DEV/run/$1.pid" ] && kill -0 "$(cat "$DEV/run/$1.pid")" 2>/dev/null; }

migrate() {
  local pids=() s
  for s in "${SERVICES[@]}"; do
    alive "$s" && [ "$s" = query ] && continue  # chDB's directory is held by the running service
    "$PY" -m "services.$s" migrate >> "$DEV/logs/migrate.log" 2>&1 & pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { tail -20 "$DEV/logs/migrate.log" >&2; echo "stack: a migration failed" >&2; exit 1; }
  done
}

start_services() {
  local s
  for s in "${SERVICES[@]}"; do
    alive "$s" && continue
    nohup "$PY" -m "services.$s" run >> "$DEV/logs/$s.log" 2>&1 &
    echo $! > "$DEV/run/$s.pid"
  done
}

wait_healthy() {
  local deadline=$((SECONDS + 60))
  until "$PY" -m scripts.health > "$DEV/run/health.txt" 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      cat "$DEV/run/health.txt" >&2; echo "stack: not healthy after 60 s (see $DEV/logs)" >&2; exit 1
    fi
    sleep 0.3
  done
  cat "$DEV/run/health.txt"
}

stop_services() {
  local s pid
  for s in "${SERVICES[@]}"; do
    alive "$s" || { rm -f "$DEV/run/$s.pid"; continue; }
    pid=$(cat "$DEV/run/$s.pid"); kill -TERM "$pid"
  done
  for s in "${SERVICES[@]}"; do
    [ -f "$DEV/run/$s.pid" ] || continue
    pid=$(cat "$DEV/run/$s.pid")
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$DEV/run/$s.pid"
  done
}

case "${1:-}" in
  up)
    scripts/engines.sh start
    migrate
    # Locally the gateway drains for a moment only; in Kubernetes the chart sets it to match probes.
    GATEWAY_DRAIN_SECONDS=${GATEWAY_DRAIN_SECONDS:-0.5} start_services
    wait_healthy
    cat <<MSG

Gateway: http://localhost:$GATEWAY_HTTP_PORT  (logs: $DEV/logs, stop: make stop)
Project: $LANGFUSE_INIT_PROJECT_ID ($LANGFUSE_INIT_PROJECT_NAME) in $LANGFUSE_INIT_ORG_ID
  LANGFUSE_HOST=http://localhost:$GATEWAY_HTTP_PORT
  LANGFUSE_PUBLIC_KEY=$LANGFUSE_INIT_PROJECT_PUBLIC_KEY
  LANGFUSE_SECRET_KEY=$LANGFUSE_INIT_PROJECT_SECRET_KEY
MSG
    ;;
  down) stop_services; scripts/engines.sh stop ;;
  health) "$PY" -m scripts.health ;;
  *) echo "usage: $0 up|down|health" >&2; exit 2 ;;
esac
