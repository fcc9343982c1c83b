#!/usr/bin/env bash
# Scale out: five cluster nodes on one Redis on this machine, 19,000 idle
# connections each (95,000; a process here may hold 20,000 descriptors), and
# cross-node pairs running during the hold. Writes one JSON per generator and
# node RSS / Redis CPU under bench/results/scaleout-DATE/. Build first
# (ninja -C build). Loopback only; every run is bounded by its own watchdog
# and by `timeout`.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-$root/build}
out=${BENCH_RESULTS:-$root/bench/results}/scaleout-$(date +%Y%m%dT%H%M%S)
nodes=5 per_node=${SCALEOUT_PER_NODE:-19000} hold=${SCALEOUT_HOLD:-90}
mkdir -p "$out"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_of() { grep -o 'listening on [0-9.]*:[0-9]*' "$1" | cut -d: -f2; }

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$out/redis.log" 2>&1 &
redis_pid=$!
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done

pids=() urls=()
for i in $(seq 0 $((nodes - 1))); do
  "$build/hubnode" --server.port=0 --redis.url="redis://127.0.0.1:$redis_port" \
    --cluster.node-id="n$i" --hub.rate-limit=1000000 --server.max-connections=19990 \
    >"$out/node$i.out" 2>"$out/node$i.err" &
  pids+=($!)
done
for i in $(seq 0 $((nodes - 1))); do
  until grep -q ' listening on ' "$out/node$i.out"; do sleep 0.1; done
  urls+=("--url=ws://127.0.0.1:$(port_of "$out/node$i.out")/ws")
done

# One idle generator per node, started a few seconds apart; each holds its
# connections long enough for the pairs below to run inside every hold.
gens=()
for i in $(seq 0 $((nodes - 1))); do
  timeout 300 "$build/bench/hubnode-bench" idle "${urls[$i]}" --pid="${pids[$i]}" \
    --connections="$per_node" --hold="$hold" --user-base=$((1000000 * (i + 1))) \
    >"$out/idle$i.json" 2>"$out/idle$i.err" &
  gens+=($!)
  sleep 6
done
sleep 12
redis-cli -p "$redis_port" info cpu | grep used_cpu >"$out/redis_cpu_before_pairs.txt"
for pid in "${pids[@]}"; do grep VmRSS "/proc/$pid/status"; done >"$out/node_rss.txt"
pid_args=()
for pid in "${pids[@]}"; do pid_args+=("--pid=$pid"); done
timeout 120 "$build/bench/hubnode-bench" cluster "${urls[@]}" "${pid_args[@]}" \
  --connections=1000 --rate=5000 --duration=10 >"$out/cluster_rate.json" 2>"$out/cluster.err"
timeout 120 "$build/bench/hubnode-bench" cluster "${urls[@]}" "${pid_args[@]}" \
  --connections=1000 --window=8 --duration=10 >"$out/cluster_closed.json" 2>>"$out/cluster.err"
redis-cli -p "$redis_port" info cpu | grep used_cpu >"$out/redis_cpu_after_pairs.txt"
wait "${gens[@]}"
kill "${pids[@]}" "$redis_pid"
wait "${pids[@]}" "$redis_pid" 2>/dev/null
echo "$out"
