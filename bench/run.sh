#!/usr/bin/env bash
# The standard benchmark suite on one machine (README "Benchmarks"): builds
# what is missing, starts a redis-server and the nodes on free loopback
# ports, runs every scenario of hubnode-bench, stops everything by PID, and
# writes one JSON per run, results.json and PNG plots under bench/results/.
#
# Bounded to a few minutes by default; scale with these variables:
#   BENCH_IDLE_NS="1000 5000 19000"   idle: connection counts (one fresh node each)
#   BENCH_RATES="2000 5000 10000 20000 40000"  pairs open loop: offered msgs/s
#   BENCH_CONNECTIONS=1000            pairs, echo, cluster: clients
#   BENCH_DURATION=5                  seconds measured per traffic/churn run
#   BENCH_CHURN_USERS=500  BENCH_STORM_CLIENTS=2000  BENCH_CLUSTER_NODES=3
#   BENCH_RESULTS=bench/results/DATE  where the results go
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

IDLE_NS=${BENCH_IDLE_NS:-"1000 5000 19000"}
RATES=${BENCH_RATES:-"2000 5000 10000 20000 40000"}
CONNECTIONS=${BENCH_CONNECTIONS:-1000}
DURATION=${BENCH_DURATION:-5}
CHURN_USERS=${BENCH_CHURN_USERS:-500}
STORM_CLIENTS=${BENCH_STORM_CLIENTS:-2000}
CLUSTER_NODES=${BENCH_CLUSTER_NODES:-3}
OUT=${BENCH_RESULTS:-bench/results/$(date +%Y%m%d-%H%M%S)}

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

bash .ci/install-deps gnuplot-nox curl
if [[ ! -f build/meson-private/coredata.dat ]]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build hubnode bench/hubnode-bench >/dev/null
mkdir -p "$OUT/logs"

# idle: a fresh node per size, so that its RSS grows from the same start
for n in $IDLE_NS; do
  start_node "idle-$n"
  run "idle-$n" idle --url="ws://127.0.0.1:$node_port/ws" --pid="$node_pid" \
    --connections="$n"
  stop_all
done

# standalone traffic and presence on one node
start_node standalone --presence.grace-period=100ms
url="ws://127.0.0.1:$node_port/ws"
run pairs-closed pairs --url="$url" --pid="$node_pid" --connections="$CONNECTIONS" \
  --duration="$DURATION" --window=8
run echo-closed echo --url="$url" --pid="$node_pid" --connections="$CONNECTIONS" \
  --duration="$DURATION" --window=8
for rate in $RATES; do
  run "pairs-open-$rate" pairs --url="$url" --pid="$node_pid" \
    --connections="$CONNECTIONS" --duration="$DURATION" --rate="$rate"
done
run churn churn --url="$url" --pid="$node_pid" --connections="$CHURN_USERS" \
  --duration="$DURATION"
run storm storm --url="$url" --pid="$node_pid" --connections="$STORM_CLIENTS"
stop_all

# cluster: nodes on one redis-server
start_redis
urls=()
for ((i = 1; i <= CLUSTER_NODES; i++)); do
  start_node "cluster-$i" --redis.url="redis://127.0.0.1:$redis_port" \
    --cluster.node-id="bench-$i"
  wait_ready "$node_port"
  urls+=(--url="ws://127.0.0.1:$node_port/ws" --pid="$node_pid")
done
redis=(--redis="redis://127.0.0.1:$redis_port")
run cluster-closed cluster "${urls[@]}" --connections="$CONNECTIONS" \
  --duration="$DURATION" --window=8
run cluster-churn churn "${urls[@]}" "${redis[@]}" --connections="$CHURN_USERS" \
  --duration="$DURATION"
run cluster-storm storm "${urls[@]}" "${redis[@]}" --connections="$STORM_CLIENTS"
stop_all

/usr/bin/python3 bench/collect.py "$OUT"
gnuplot -e "dir='$OUT'" bench/plots.gp
say "results in $OUT (results.json, latency.png, rss.png)"
