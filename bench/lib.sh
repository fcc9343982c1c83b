# Helpers of the benchmark scripts (run.sh, scaleout.sh), sourced from the
# repository root with OUT set: start nodes and a redis-server on free
# loopback ports, bounded in time, and stop everything by PID on exit.

BENCH=build/bench/hubnode-bench
# Closed loops send far faster than the default 100 messages/s per
# connection; the benchmark measures the node, not its rate limit.
NODE_OPTS=(--hub.rate-limit=1000000)
START_TIMEOUT=10 # seconds for a node or redis-server to come up
STOP_TIMEOUT=10  # seconds after SIGTERM before SIGKILL

say() { echo "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

pids=()
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}
stop_all() {
  local pid
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  pids=()
}
trap stop_all EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_node NAME OPTION...: sets node_pid and node_port from its startup line.
start_node() {
  local name=$1 i line
  shift
  : >"$OUT/logs/$name.out" # exists before the background job opens it
  build/hubnode --server.port=0 "${NODE_OPTS[@]}" "$@" \
    >"$OUT/logs/$name.out" 2>"$OUT/logs/$name.err" &
  node_pid=$!
  pids+=("$node_pid")
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    line=$(head -n 1 "$OUT/logs/$name.out")
    if [[ $line =~ ^hubnode\ listening\ on\ 127\.0\.0\.1:([0-9]+)\  ]]; then
      node_port=${BASH_REMATCH[1]}
      return 0
    fi
    kill -0 "$node_pid" 2>/dev/null || die "node $name exited; see $OUT/logs/$name.err"
    sleep 0.1
  done
  die "node $name printed no listening line within ${START_TIMEOUT}s"
}

# wait_ready PORT: /readyz answers 200 (cluster mode: Redis connected).
wait_ready() {
  local i
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz") == 200 ]] && return 0
    sleep 0.1
  done
  die "node on port $1 not ready within ${START_TIMEOUT}s"
}

start_redis() {
  local i
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$OUT/logs" --logfile redis.log --daemonize no >/dev/null 2>&1 &
  pids+=("$!")
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  die "redis-server did not answer within ${START_TIMEOUT}s"
}

# run NAME SCENARIO OPTION...: one hubnode-bench run, its JSON in $OUT/NAME.json.
run() {
  local name=$1
  shift
  say "$name"
  if ! "$BENCH" "$@" >"$OUT/$name.json" 2>"$OUT/logs/$name.bench.err"; then
    say "$name failed; see $OUT/logs/$name.bench.err"
    rm -f "$OUT/$name.json"
  fi
}
