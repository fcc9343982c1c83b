#!/usr/bin/env bash
# Scale out: five cluster nodes on one Redis on this machine, 19,000 idle
# connections each (95,000; a process here may hold 20,000 descriptors), and
# cross-node pairs running during the hold. Writes one JSON per generator and
# node RSS / Redis CPU under bench/results/scaleout-DATE/. Build first
# (ninja -C build). Loopback only; every run is bounded by its own watchdog
# and by `timeout`.
#   SCALEOUT_PER_NODE=19000  idle connections per node
#   SCALEOUT_HOLD=90         seconds each idle generator holds them
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${BENCH_RESULTS:-bench/results}/scaleout-$(date +%Y%m%dT%H%M%S)
NODES=5
PER_NODE=${SCALEOUT_PER_NODE:-19000}
HOLD=${SCALEOUT_HOLD:-90}

# shellcheck source=bench/lib.sh
source bench/lib.sh
mkdir -p "$OUT/logs"

start_redis
urls=() node_pids=()
for ((i = 0; i < NODES; i++)); do
  start_node "node$i" --redis.url="redis://127.0.0.1:$redis_port" \
    --cluster.node-id="n$i" --server.max-connections=19990
  wait_ready "$node_port"
  urls+=(--url="ws://127.0.0.1:$node_port/ws")
  node_pids+=("$node_pid")
done

# One idle generator per node, started a few seconds apart; each holds its
# connections long enough for the pairs below to run inside every hold.
gens=()
for ((i = 0; i < NODES; i++)); do
  timeout $((HOLD + 210)) "$BENCH" idle "${urls[$i]}" --pid="${node_pids[$i]}" \
    --connections="$PER_NODE" --hold="$HOLD" --user-base=$((1000000 * (i + 1))) \
    >"$OUT/idle$i.json" 2>"$OUT/logs/idle$i.err" &
  gens+=($!)
  sleep 6
done
sleep 12
redis-cli -p "$redis_port" info cpu | grep used_cpu >"$OUT/redis_cpu_before_pairs.txt"
for pid in "${node_pids[@]}"; do grep VmRSS "/proc/$pid/status"; done >"$OUT/node_rss.txt"
pid_args=()
for pid in "${node_pids[@]}"; do pid_args+=("--pid=$pid"); done
run cluster_rate cluster "${urls[@]}" "${pid_args[@]}" --connections=1000 --rate=5000 \
  --duration=10
run cluster_closed cluster "${urls[@]}" "${pid_args[@]}" --connections=1000 --window=8 \
  --duration=10
redis-cli -p "$redis_port" info cpu | grep used_cpu >"$OUT/redis_cpu_after_pairs.txt"
wait "${gens[@]}" || say "an idle generator failed; see $OUT/logs"
stop_all
say "results in $OUT"
