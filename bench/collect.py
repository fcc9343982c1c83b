"""Gathers the runs of bench/run.sh: DIR/results.json (every run by name),
DIR/targets.json (the targets of issues 4 and 13 that this suite measures on
its own, also printed) and the tables bench/plots.gp draws (DIR/latency.tsv,
DIR/rss.tsv). With --half-rate FILE it prints half the delivered msgs/s
(fanout: publications/s) of that closed-loop run instead: the rate at which
a latency target is set."""

import json
import sys
from pathlib import Path

MAX_KIB_PER_IDLE_CONNECTION = 4
MAX_P99_MS_AT_HALF_MAX = 5
MAX_FANOUT_P99_MS_AT_HALF_MAX = 10
MAX_RECOVER_SECONDS = 2  # one node
MAX_CLUSTER_RECOVER_SECONDS = 5  # across the cluster nodes


def open_loop_runs(runs):
    return sorted((r for r in runs.values()
                   if r.get("scenario") == "pairs" and r.get("mode") == "open"),
                  key=lambda r: r["offered_per_s"])


def idle_runs(runs):
    return sorted((r for r in runs.values()
                   if r.get("scenario") == "idle" and "node_rss_kib_after" in r),
                  key=lambda r: r["connect"]["connected"])


def write_tables(out, runs):
    with open(out / "latency.tsv", "w") as f:
        f.write("# offered_per_s delivered_per_s p50_us p90_us p99_us p999_us\n")
        for r in open_loop_runs(runs):
            lat = r["latency_us"]
            f.write(f"{r['offered_per_s']} {r['delivered_per_s']} {lat['p50']} "
                    f"{lat['p90']} {lat['p99']} {lat['p999']}\n")
    with open(out / "rss.tsv", "w") as f:
        f.write("# connections node_rss_mib kib_per_connection\n")
        for r in idle_runs(runs):
            f.write(f"{r['connect']['connected']} {r['node_rss_kib_after'] / 1024:.1f} "
                    f"{r.get('node_rss_kib_per_connection', 0)}\n")


def target(name, figure, holds=None):
    return {"target": name, "figure": figure, "holds": holds}


def memory_target(runs):
    idle = idle_runs(runs)
    if not idle:
        return []
    r = idle[-1]
    kib = r["node_rss_kib_per_connection"]
    return [target("memory", f"idle {r['connect']['connected']}: {kib} KiB of node RSS "
                   f"per connection (at most {MAX_KIB_PER_IDLE_CONNECTION})",
                   kib <= MAX_KIB_PER_IDLE_CONNECTION)]


def throughput_target(runs):
    r = runs.get("pairs-closed")
    if not r:
        return []
    return [target("throughput", f"pairs closed loop: {r['delivered_per_s']:,.0f} msgs/s, "
                   f"node {r['measured']['node_cpu_us_per_msg']} us per message (the maximum)")]


def all_delivered(r):
    return r["delivered"] == r["sent"] and r["unsent"] == 0 and r["losses"] == 0


def p99_ms(r):
    return r["latency_us"]["p99"] / 1000


def half_max_target(what, r, unit, limit, complete):
    """A latency target set at half the closed-loop maximum."""
    return target("latency", f"{what} open loop at {r['offered_per_s']:,.0f} {unit} (half "
                  f"the closed-loop maximum): p99 {p99_ms(r):.2f} ms (under {limit})",
                  p99_ms(r) < limit and complete)


def latency_targets(runs):
    found = []
    half = runs.get("pairs-open-half-max")
    if half:
        found.append(half_max_target("pairs", half, "msgs/s", MAX_P99_MS_AT_HALF_MAX,
                                     all_delivered(half)))
    # The open-loop maximum: the highest swept rate the node kept up with.
    kept_up = [r for r in open_loop_runs(runs)
               if r is not half and all_delivered(r) and p99_ms(r) < MAX_P99_MS_AT_HALF_MAX]
    if kept_up:
        r = kept_up[-1]
        found.append(target(
            "latency", f"highest swept open-loop rate with p99 under "
            f"{MAX_P99_MS_AT_HALF_MAX} ms: {r['offered_per_s']:,.0f} msgs/s "
            f"(p99 {p99_ms(r):.2f} ms)"))
    return found


def presence_targets(runs):
    found = []
    for name in ("churn", "storm", "cluster-churn", "cluster-storm"):
        r = runs.get(name)
        if not r:
            continue
        exact = (r["presence"]["not_online"] == 0 and r["given_up"] == 0 and
                 r.get("all_welcomed", True))
        found.append(target("presence", f"{name}: {r['flaps']} flaps, "
                            f"{r['presence']['not_online']} users not online at the end",
                            r["flaps"] == 0 and exact and r["errors"] == 0))
    return found


def fanout_exact(r):
    return (r["publishing"] and r["losses"] == 0 and r["order_violations"] == 0 and
            r["errors"] == 0 and r["deliveries"] == r["expected_deliveries"])


def cpu_per_delivery(r):
    m = r["measured"]
    return (f"node {m.get('node_user_us_per_msg')} us user + {m.get('node_sys_us_per_msg')} "
            f"us system per delivery, generator {m.get('generator_cpu_us_per_msg')} us")


def fanout_targets(runs):
    found = []
    closed = runs.get("fanout-closed")
    if closed:
        found.append(target(
            "fanout", f"fanout closed loop, 1 channel x {closed['subscribers']:,}: "
            f"{closed['deliveries_per_s']:,.0f} deliveries/s, {cpu_per_delivery(closed)}, "
            f"{closed['losses']} lost, {closed['order_violations']} out of order",
            fanout_exact(closed)))
    fixed = runs.get("fanout-rate")
    if fixed:
        found.append(target(
            "fanout", f"fanout at {fixed.get('offered_per_s')} publications/s, 1 channel x "
            f"{fixed['subscribers']:,}: {cpu_per_delivery(fixed)} (the peers' figures "
            f"need the peers kit)"))
    half = runs.get("fanout-open-half-max")
    if half:
        found.append(half_max_target("fanout (publish to delivery)", half, "publications/s",
                                     MAX_FANOUT_P99_MS_AT_HALF_MAX, fanout_exact(half)))
    return found


def recovery_targets(runs):
    found = []
    for name, limit in (("recover", MAX_RECOVER_SECONDS),
                        ("cluster-recover", MAX_CLUSTER_RECOVER_SECONDS)):
        r = runs.get(name)
        if not r:
            continue
        took = r["seconds_to_all_recovered"]
        exact = r["all_recovered"] and r["exact"] == r["users"] and r["errors"] == 0
        found.append(target("recovery", f"{name} {r['users']:,} clients x "
                            f"{r['backlog']['per_user']} behind at once: "
                            f"{'-' if took is None else took} s until all recovered, "
                            f"{r['exact']:,} exact (within {limit} s, all exact)",
                            exact and took is not None and took <= limit))
    return found


def targets(runs):
    return (memory_target(runs) + throughput_target(runs) + latency_targets(runs) +
            presence_targets(runs) + fanout_targets(runs) + recovery_targets(runs))


def verdict(t):
    return {True: "holds", False: "DOES NOT HOLD", None: ""}[t["holds"]]


def main(out):
    runs = {}
    for path in sorted(out.glob("*.json")):
        if path.name not in ("results.json", "targets.json"):
            runs[path.stem] = json.loads(path.read_text())
    (out / "results.json").write_text(json.dumps(runs, indent=2, sort_keys=True) + "\n")
    write_tables(out, runs)
    found = targets(runs)
    (out / "targets.json").write_text(json.dumps(found, indent=2) + "\n")
    for t in found:
        print(f"{t['target']:<11} {t['figure']}  {verdict(t)}".rstrip())


def half_rate(closed_run):
    r = json.loads(closed_run.read_text())
    per_s = r["publications_per_s"] if r.get("scenario") == "fanout" else r["delivered_per_s"]
    print(int(per_s // 2))


if __name__ == "__main__":
    if sys.argv[1] == "--half-rate":
        half_rate(Path(sys.argv[2]))
    else:
        main(Path(sys.argv[1]))
