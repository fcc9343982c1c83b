#!/usr/bin/env bash
# The standard benchmark suite on one machine (bench/README.md): builds
# what is missing, starts a redis-server and the nodes on free loopback
# ports, runs every scenario of hubnode-bench, stops everything by PID, and
# writes one JSON per run, results.json, targets.json (also printed: the
# targets of issues 4 and 13 this suite measures by itself) and PNG plots under
# bench/results/.
#
# Bounded to a few minutes by default; scale with these variables:
#   BENCH_IDLE_NS="1000 5000 19000"   idle: connection counts (one fresh node each)
#   BENCH_RATES="2000 5000 10000 20000 40000 60000"  pairs open loop: offered msgs/s
#   BENCH_CONNECTIONS=1000            pairs, echo, cluster: clients
#   BENCH_DURATION=5                  seconds measured per traffic/churn run
#   BENCH_CHURN_USERS=500  BENCH_STORM_CLIENTS=2000  BENCH_CLUSTER_NODES=3
#   BENCH_FANOUT_SUBS=5000  BENCH_FANOUT_RATE=5   fanout: subscribers, publications/s
#   BENCH_RECOVER_USERS=5000  BENCH_RECOVER_BACKLOG=50  recover: clients, entries behind
#   BENCH_RESULTS=bench/results/DATE  where the results go
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

IDLE_NS=${BENCH_IDLE_NS:-"1000 5000 19000"}
RATES=${BENCH_RATES:-"2000 5000 10000 20000 40000 60000"}
CONNECTIONS=${BENCH_CONNECTIONS:-1000}
DURATION=${BENCH_DURATION:-5}
CHURN_USERS=${BENCH_CHURN_USERS:-500}
STORM_CLIENTS=${BENCH_STORM_CLIENTS:-2000}
CLUSTER_NODES=${BENCH_CLUSTER_NODES:-3}
FANOUT_SUBS=${BENCH_FANOUT_SUBS:-5000}
FANOUT_RATE=${BENCH_FANOUT_RATE:-5}
RECOVER_USERS=${BENCH_RECOVER_USERS:-5000}
RECOVER_BACKLOG=${BENCH_RECOVER_BACKLOG:-50}
OUT=${BENCH_RESULTS:-bench/results/$(date +%Y%m%d-%H%M%S)}

# shellcheck source=bench/lib.sh
source bench/lib.sh

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
# The latency target is set at half the closed-loop maximum.
if [[ -f $OUT/pairs-closed.json ]]; then
  half=$(/usr/bin/python3 bench/collect.py --half-rate "$OUT/pairs-closed.json")
  run pairs-open-half-max pairs --url="$url" --pid="$node_pid" \
    --connections="$CONNECTIONS" --duration="$DURATION" --rate="$half"
fi
run churn churn --url="$url" --pid="$node_pid" --connections="$CHURN_USERS" \
  --duration="$DURATION"
run storm storm --url="$url" --pid="$node_pid" --connections="$STORM_CLIENTS"
# channels (SPEC 8): the kit's fixed rate (5 publications/s to 5,000 is
# 25,000 deliveries/s), the closed-loop maximum, and half of it open loop
run fanout-rate fanout --url="$url" --pid="$node_pid" --connections="$FANOUT_SUBS" \
  --duration="$DURATION" --rate="$FANOUT_RATE"
run fanout-closed fanout --url="$url" --pid="$node_pid" --connections="$FANOUT_SUBS" \
  --duration="$DURATION" --window=8
if [[ -f $OUT/fanout-closed.json ]]; then
  half=$(/usr/bin/python3 bench/collect.py --half-rate "$OUT/fanout-closed.json")
  if ((half > 0)); then
    run fanout-open-half-max fanout --url="$url" --pid="$node_pid" \
      --connections="$FANOUT_SUBS" --duration="$DURATION" --rate="$half"
  fi
fi
run recover recover --url="$url" --pid="$node_pid" --connections="$RECOVER_USERS" \
  --backlog="$RECOVER_BACKLOG"
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
run cluster-recover recover "${urls[@]}" "${redis[@]}" --connections="$RECOVER_USERS" \
  --backlog="$RECOVER_BACKLOG"
stop_all

/usr/bin/python3 bench/collect.py "$OUT"
gnuplot -e "dir='$OUT'" bench/plots.gp
say "results in $OUT (results.json, targets.json, latency.png, rss.png)"
