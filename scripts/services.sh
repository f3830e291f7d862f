#!/usr/bin/env bash
# Start/stop the real servers the test suite uses: PostgreSQL, Redis and an S3 gateway (SeaweedFS `weed mini`).
# `start` writes scripts/services.env (CTRLGENAUG_TEST_*), which `make test` sources.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ENV_FILE="$ROOT/scripts/services.env"
STATE_DIR="$ROOT/.cache/seaweedfs"
PID_FILE="$STATE_DIR/weed.pid"
PORT_FILE="$STATE_DIR/s3.port"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
WEED="${WEED:-$(dirname "$PYTHON")/weed}"
S3_ACCESS_KEY="${CTRLGENAUG_TEST_S3_ACCESS_KEY:-ctrlgenaug-test}"
S3_SECRET_KEY="${CTRLGENAUG_TEST_S3_SECRET_KEY:-ctrlgenaug-test-secret}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.5
  done
}

free_ports() {  # free_ports N: N distinct free TCP ports on 127.0.0.1
  "$PYTHON" - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

s3_answers() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" || true)"
  [[ "$code" =~ ^[2-4][0-9][0-9]$ ]]
}

start_postgres() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    wait_for 30 pg_isready -q -h 127.0.0.1 -p 5432
  fi
}

start_redis() {
  if ! port_open 6379; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_for 15 port_open 6379
  fi
}

weed_running() {
  [[ -f "$PID_FILE" && -f "$PORT_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null && s3_answers "$(cat "$PORT_FILE")"
}

start_s3() {
  if weed_running; then return; fi
  mkdir -p "$STATE_DIR/data"
  read -r master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc iceberg lance admin admin_grpc \
    <<<"$(free_ports 12)"
  AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
    nohup "$WEED" mini -dir="$STATE_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -webdav=false \
    -master.port="$master" -master.port.grpc="$master_grpc" -volume.port="$volume" -volume.port.grpc="$volume_grpc" \
    -filer.port="$filer" -filer.port.grpc="$filer_grpc" -s3.port="$s3" -s3.port.grpc="$s3_grpc" \
    -s3.port.iceberg="$iceberg" -s3.port.lance="$lance" -admin.port="$admin" -admin.port.grpc="$admin_grpc" >"$STATE_DIR/weed.log" 2>&1 &
  echo $! >"$PID_FILE"
  echo "$s3" >"$PORT_FILE"
  if ! wait_for 90 s3_answers "$s3"; then
    echo "SeaweedFS S3 did not answer on port $s3; see $STATE_DIR/weed.log" >&2
    exit 1
  fi
}

write_env() {
  cat >"$ENV_FILE" <<ENV
export CTRLGENAUG_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres
export CTRLGENAUG_TEST_REDIS_URL=redis://127.0.0.1:6379/0
export CTRLGENAUG_TEST_S3_ENDPOINT=127.0.0.1:$(cat "$PORT_FILE")
export CTRLGENAUG_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY
export CTRLGENAUG_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
ENV
}

stop_s3() {
  if [[ -f "$PID_FILE" ]]; then
    local pid; pid="$(cat "$PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      wait_for 20 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid"
    fi
    rm -f "$PID_FILE" "$PORT_FILE"
  fi
}

case "${1:-}" in
  start)
    start_postgres
    start_redis
    start_s3
    write_env
    echo "services up; settings in $ENV_FILE"
    ;;
  stop)
    # PostgreSQL and Redis are the machine's; only the S3 gateway this script started is stopped.
    stop_s3
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
