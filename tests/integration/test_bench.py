"""hubnode-bench (bench/): every scenario on a tiny bounded case against a
real node (and a real redis-server for cluster mode). Checks that each run
prints one well-formed JSON object with its fields, and that a case this
small has no errors, losses or flaps. No timing is asserted: the figures
are whatever this machine gives.
"""

import json
import os
import subprocess
import sys

import pytest

from hubnode_testing import REPO, http, poll_until, wait_ready

BENCH = os.environ.get("HUBNODE_BENCH") or str(REPO / "build" / "bench" / "hubnode-bench")
COLLECT = REPO / "bench" / "collect.py"
# closed loops send as fast as the node answers: far above the default rate limit
FAST = ("--hub.rate-limit=1000000",)
# a grace period no reconnect on a busy machine outlasts: zero flaps is then
# what the node must deliver, not a matter of timing
LONG_GRACE = "5s"


def bench(*args, timeout=90):
    """Runs hubnode-bench to completion; returns its one JSON object."""
    if not os.path.exists(BENCH):
        pytest.fail(f"{BENCH} does not exist (ninja -C build, or set HUBNODE_BENCH)")
    p = subprocess.run([BENCH, *args, f"--timeout={timeout - 10}"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, (
        f"hubnode-bench {' '.join(args)} exit status (stderr: {err[-500:]!r})")
    lines = out.splitlines()
    assert len(lines) == 1, f"stdout lines of hubnode-bench (stdout: {out[:500]!r})"
    try:
        result = json.loads(lines[0])
    except ValueError as e:
        pytest.fail(f"stdout is not JSON ({e}): {lines[0][:500]!r}")
    assert isinstance(result, dict), f"result is not an object: {result!r}"
    return result


def has(obj, *fields, what="result"):
    missing = [f for f in fields if f not in obj]
    assert not missing, f"{what} lacks {missing}: {json.dumps(obj)[:800]}"


def check_common(r, scenario):
    has(r, "scenario", "generator", "user_base")
    assert r["scenario"] == scenario, "scenario"
    has(r["generator"], "wall_s", "cpu_s", "cpu_pct", what="generator")


def check_traffic(r, scenario, connections, mode):
    check_common(r, scenario)
    has(r, "connect", "mode", "connections", "sent", "delivered", "losses",
        "order_violations", "acks", "errors", "latency_us", "measured",
        "delivered_per_s")
    assert r["mode"] == mode, "mode"
    assert r["connections"] == connections, "connections"
    assert r["connect"]["connected"] == connections, "connected"
    assert r["sent"] > 0, f"nothing sent: {r}"
    assert r["delivered"] == r["sent"], "delivered (all sent)"
    assert (r["losses"], r["order_violations"], r["errors"]) == (0, 0, 0), (
        "losses, order violations, errors")
    assert r["acks"] == r["sent"], "acks"
    has(r["latency_us"], "p50", "p90", "p99", "p999", "max", "count", what="latency_us")
    assert r["latency_us"]["count"] == r["delivered"], "latency samples"
    has(r["measured"], "generator_cpu_pct", "node_cpu_pct", "node_cpu_us_per_msg",
        what="measured")


def url(node):
    return f"--url={node.ws_base}/ws"


@pytest.mark.timeout(120)
def test_idle_holds_and_answers(start_node):
    n = start_node(*FAST)
    r = bench("idle", url(n), f"--pid={n.pid}", "--connections=20", "--hold=0.2",
              "--sample=5")
    check_common(r, "idle")
    has(r, "connections", "processes", "connect", "sample", "errors",
        "node_rss_kib_before", "node_rss_kib_after", "node_rss_kib_per_connection")
    assert r["processes"] == 1, "processes"
    assert r["connect"]["connected"] == 20, "connected"
    assert r["sample"] == {"size": 5, "answered": 5}, "sample"
    assert r["errors"] == 0, "errors"


@pytest.mark.timeout(120)
def test_idle_spreads_over_processes(start_node):
    n = start_node(*FAST)
    r = bench("idle", url(n), "--connections=20", "--per-process=8", "--hold=0.2",
              "--sample=6")
    assert r["processes"] == 3, "processes for 20 connections at 8 per process"
    assert r["connect"]["connected"] == 20, "connected over all processes"
    assert r["sample"]["answered"] == r["sample"]["size"], "sample answered"
    assert r["errors"] == 0, "errors"


@pytest.mark.timeout(120)
def test_pairs_closed_loop(start_node):
    n = start_node(*FAST)
    r = bench("pairs", url(n), f"--pid={n.pid}", "--connections=20", "--duration=1",
              "--window=4")
    check_traffic(r, "pairs", 20, "closed")


@pytest.mark.timeout(120)
def test_pairs_open_loop(start_node):
    n = start_node(*FAST)
    r = bench("pairs", url(n), f"--pid={n.pid}", "--connections=20", "--duration=1",
              "--rate=200", "--size=100")
    check_traffic(r, "pairs", 20, "open")
    assert r["offered_per_s"] == 200, "offered_per_s"


@pytest.mark.timeout(120)
def test_echo_closed_loop(start_node):
    n = start_node(*FAST)
    r = bench("echo", url(n), f"--pid={n.pid}", "--connections=20", "--duration=1")
    check_traffic(r, "echo", 20, "closed")


def check_presence(r, source):
    has(r, "flaps", "errors", "presence", "connection_failures", "measured")
    assert r["presence"]["source"] == source, "presence source"
    assert (r["flaps"], r["presence"]["not_online"], r["errors"]) == (0, 0, 0), (
        "flaps, users not online at the end, errors")


def check_churn(r, source):
    check_common(r, "churn")
    has(r, "users", "cycles", "cycles_per_s", "reconnect_us", "connected_at_end")
    assert r["cycles"] > 0, f"no reconnection cycle: {r}"
    assert r["connected_at_end"] == 20, (
        f"users connected at the end (given up {r['given_up']}, "
        f"failures {r.get('failure_reasons')})")
    assert r["reconnect_us"]["count"] == r["cycles"], "reconnect latency samples"
    check_presence(r, source)


def check_storm(r, source):
    check_common(r, "storm")
    has(r, "clients", "all_welcomed", "welcomed", "seconds_to_all_welcomed",
        "welcomed_after_us", "given_up")
    assert (r["all_welcomed"], r["welcomed"], r["given_up"]) == (True, 20, 0), (
        "all welcomed again, none given up")
    assert r["welcomed_after_us"]["count"] == 20, "reconnect samples"
    check_presence(r, source)


@pytest.mark.timeout(120)
def test_churn_standalone_without_flaps(start_node):
    n = start_node(*FAST, f"--presence.grace-period={LONG_GRACE}")
    r = bench("churn", url(n), f"--pid={n.pid}", "--connections=20", "--duration=1",
              "--hold-ms=20")
    check_churn(r, "watcher")


@pytest.mark.timeout(120)
def test_storm_standalone_without_flaps(start_node):
    n = start_node(*FAST, f"--presence.grace-period={LONG_GRACE}")
    r = bench("storm", url(n), f"--pid={n.pid}", "--connections=20", "--jitter-ms=50")
    check_storm(r, "watcher")


def check_fanout(r, subscribers, mode):
    check_common(r, "fanout")
    has(r, "connect", "subscribe", "publishing", "mode", "subscribers", "publications",
        "published", "deliveries", "expected_deliveries", "losses", "order_violations",
        "errors", "latency_us", "measured", "deliveries_per_s", "publications_per_s")
    assert (r["mode"], r["subscribers"]) == (mode, subscribers), "mode, subscribers"
    assert r["subscribe"]["subscribers_subscribed"] == subscribers, f"subscribed: {r}"
    assert r["publishing"] is True, "publisher subscribed and publishing"
    assert r["publications"] > 0, f"nothing published: {r}"
    assert r["published"] == r["publications"], "every publication answered"
    assert r["deliveries"] == r["expected_deliveries"] == r["published"] * subscribers, (
        "every publication delivered to every subscriber")
    assert (r["losses"], r["order_violations"], r["errors"]) == (0, 0, 0), (
        "losses, order violations, errors")
    assert r["latency_us"]["count"] == r["deliveries"], "latency samples"
    has(r["measured"], "node_cpu_us_per_msg", "node_user_us_per_msg", "node_sys_us_per_msg",
        "generator_cpu_us_per_msg", what="measured")


@pytest.mark.timeout(120)
def test_fanout_closed_loop(start_node):
    n = start_node(*FAST)
    r = bench("fanout", url(n), f"--pid={n.pid}", "--connections=20", "--duration=1",
              "--window=4")
    check_fanout(r, 20, "closed")


@pytest.mark.timeout(120)
def test_fanout_open_loop(start_node):
    n = start_node(*FAST)
    r = bench("fanout", url(n), f"--pid={n.pid}", "--connections=20", "--duration=1",
              "--rate=50", "--size=100")
    check_fanout(r, 20, "open")
    assert r["offered_per_s"] == 50, "offered_per_s"


def check_recover(r, users, backlog):
    check_common(r, "recover")
    has(r, "connect", "positions", "disconnect", "backlog", "users", "welcomed",
        "recovered_true", "recovered_false", "all_recovered", "seconds_to_all_recovered",
        "recovered_after_us", "exact", "missing", "extra", "failures", "errors", "measured",
        "node_rss_kib")
    assert r["positions"] == users, "every first welcome carried a position"
    assert r["disconnect"]["closed"] == users, "users disconnected"
    assert r["backlog"]["acks"] == users * backlog, "backlog acked"
    assert (r["all_recovered"], r["recovered_true"], r["exact"]) == (True, users, users), (
        f"recovered exactly: {r}")
    assert (r["missing"], r["extra"], r["errors"]) == (0, 0, 0), "missing, extra, errors"
    assert r["recovered_after_us"]["count"] == users, "recovery samples"
    assert r["seconds_to_all_recovered"] >= 0, "time until all recovered"


@pytest.mark.timeout(120)
def test_recover_standalone(start_node):
    n = start_node(*FAST)
    r = bench("recover", url(n), f"--pid={n.pid}", "--connections=20", "--backlog=5")
    check_recover(r, 20, 5)


@pytest.mark.timeout(180)
def test_fanout_and_recover_across_nodes(redis_server, cluster_node, key_prefix):
    _, args = two_nodes(cluster_node, redis_server, key_prefix)
    r = bench("fanout", *args, "--connections=20", "--duration=1", "--window=4")
    check_fanout(r, 20, "closed")
    r = bench("recover", *args, "--connections=20", "--backlog=5")
    check_recover(r, 20, 5)
    has(r, "redis")
    has(r["redis"], "backlog_cpu_s", "reconnect_cpu_s", "used_memory_before_backlog",
        "used_memory_after_backlog", what="redis")
    assert r["redis"]["used_memory_after_backlog"] > r["redis"]["used_memory_before_backlog"], (
        "the backlog is kept in Redis")


@pytest.mark.timeout(180)
def test_fanout_reports_refused_subscribes(redis_server, cluster_node, key_prefix):
    # With Redis down the nodes answer every subscribe `unavailable`: the run
    # must say so and end, not publish into nothing or wait for deliveries.
    nodes, args = two_nodes(cluster_node, redis_server, key_prefix)
    redis_server.stop()
    poll_until(lambda: all(http(n, "GET", "/healthz").json()["redis"] == "down"
                           for n in nodes), 5.0, what="both nodes see Redis down")
    r = bench("fanout", *[a for a in args if not a.startswith("--redis")],
              "--connections=20", "--duration=0.5")
    assert r["publishing"] is False, "no publishing without a subscription"
    assert r["subscribe"]["error_codes"] == {"unavailable": 21}, "subscribe refusals by code"
    assert (r["publications"], r["deliveries"]) == (0, 0), "nothing published"
    assert r["errors"] == 21, "every refusal counted as an error"


def collect(*args):
    """Runs bench/collect.py as bench/run.sh does; returns its stdout lines."""
    p = subprocess.run([sys.executable, str(COLLECT), *map(str, args)],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, f"collect.py exit status (stderr: {p.stderr[-500:]!r})"
    return p.stdout.decode().splitlines()


@pytest.mark.timeout(180)
def test_suite_summary_reports_each_target(start_node, tmp_path):
    # The runs bench/run.sh makes, tiny and under its names; then its summary.
    runs = {
        "idle-20": ("idle", "--connections=20", "--hold=0.2"),
        "pairs-closed": ("pairs", "--connections=20", "--duration=1", "--window=4"),
        "pairs-open-200": ("pairs", "--connections=20", "--duration=1", "--rate=200"),
        "churn": ("churn", "--connections=20", "--duration=1", "--hold-ms=20"),
        "storm": ("storm", "--connections=20", "--jitter-ms=50"),
        "fanout-rate": ("fanout", "--connections=20", "--duration=1", "--rate=20"),
        "fanout-closed": ("fanout", "--connections=20", "--duration=1", "--window=4"),
        "recover": ("recover", "--connections=20", "--backlog=5"),
    }
    n = start_node(*FAST, f"--presence.grace-period={LONG_GRACE}")
    for name, (scenario, *args) in runs.items():
        r = bench(scenario, url(n), f"--pid={n.pid}", *args)
        (tmp_path / f"{name}.json").write_text(json.dumps(r))
    half = collect("--half-rate", tmp_path / "pairs-closed.json")
    closed = json.loads((tmp_path / "pairs-closed.json").read_text())
    assert half == [str(int(closed["delivered_per_s"] // 2))], "half the closed-loop maximum"
    r = bench("pairs", url(n), f"--pid={n.pid}", "--connections=20", "--duration=1",
              f"--rate={half[0]}")
    (tmp_path / "pairs-open-half-max.json").write_text(json.dumps(r))
    fanout_half = collect("--half-rate", tmp_path / "fanout-closed.json")
    fanout_closed = json.loads((tmp_path / "fanout-closed.json").read_text())
    assert fanout_half == [str(int(fanout_closed["publications_per_s"] // 2))], (
        "half the fanout closed-loop publications/s")
    r = bench("fanout", url(n), f"--pid={n.pid}", "--connections=20", "--duration=1",
              f"--rate={fanout_half[0]}")
    (tmp_path / "fanout-open-half-max.json").write_text(json.dumps(r))
    printed = collect(tmp_path)
    targets = json.loads((tmp_path / "targets.json").read_text())
    results = json.loads((tmp_path / "results.json").read_text())
    latency_rows = (tmp_path / "latency.tsv").read_text().splitlines()[1:]
    assert sorted(results) == sorted([*runs, "pairs-open-half-max", "fanout-open-half-max"]), (
        "runs in results.json")
    assert len(latency_rows) == 2, "open-loop rows in latency.tsv"
    for t in targets:
        assert sorted(t) == ["figure", "holds", "target"], "fields of a target"
    by_target = {}
    for t in targets:
        by_target.setdefault(t["target"], []).append(t)
    assert sorted(by_target) == ["fanout", "latency", "memory", "presence", "recovery",
                                 "throughput"], "targets reported"
    assert isinstance(by_target["memory"][0]["holds"], bool), f"memory verdict: {targets}"
    assert any("half the closed-loop maximum" in t["figure"] and isinstance(t["holds"], bool)
               for t in by_target["latency"]), f"latency at half the maximum: {targets}"
    assert [t["holds"] for t in by_target["presence"]] == [True, True], (
        "presence holds in churn and storm")
    assert [t["holds"] for t in by_target["fanout"]] == [True, None], (
        "fanout closed loop exact; the fixed rate a figure")
    assert any(t["figure"].startswith("fanout") and isinstance(t["holds"], bool)
               for t in by_target["latency"]), f"fanout latency at half the maximum: {targets}"
    assert isinstance(by_target["recovery"][0]["holds"], bool), f"recovery verdict: {targets}"
    assert len(printed) == len(targets), "one printed line per target"


def two_nodes(cluster_node, redis_server, prefix, grace=LONG_GRACE):
    """Two ready cluster nodes, and the hubnode-bench options aimed at them."""
    nodes = [cluster_node(f"b-{i}", *FAST, grace=grace) for i in (1, 2)]
    for n in nodes:
        wait_ready(n)
    return nodes, [url(n) for n in nodes] + [f"--pid={n.pid}" for n in nodes] + [
        f"--redis=redis://127.0.0.1:{redis_server.port}", f"--key-prefix={prefix}"]


@pytest.mark.timeout(180)
def test_cluster_pairs_across_nodes(redis_server, cluster_node, key_prefix):
    _, args = two_nodes(cluster_node, redis_server, key_prefix)
    r = bench("cluster", *args, "--connections=20", "--duration=1")
    check_traffic(r, "cluster", 20, "closed")


@pytest.mark.timeout(180)
def test_churn_and_storm_in_cluster_mode(redis_server, cluster_node, key_prefix):
    _, args = two_nodes(cluster_node, redis_server, key_prefix)
    churned = bench("churn", *args, "--connections=20", "--duration=1", "--hold-ms=20")
    stormed = bench("storm", *args, "--connections=20", "--jitter-ms=50")
    check_churn(churned, "redis")
    check_storm(stormed, "redis")


@pytest.mark.timeout(180)
def test_flaps_are_counted(redis_server, cluster_node, key_prefix):
    # Each user comes back 1 s after a 50 ms grace period: one offline event
    # per user is what the monitor must see (from Redis and from a watcher).
    _, args = two_nodes(cluster_node, redis_server, key_prefix, grace="50ms")
    watcher_args = [a for a in args if not a.startswith(("--redis", "--key-prefix"))]
    for source, how in (("redis", args), ("watcher", watcher_args)):
        r = bench("churn", *how, "--connections=5", "--duration=0.5", "--cycles=1",
                  "--reconnect-delay-ms=1000")
        assert r["presence"]["source"] == source, "presence source"
        assert r["flaps"] >= 1, f"no flap counted by the {source}: {r}"


@pytest.mark.timeout(120)
def test_watcher_counts_users_beyond_one_watch_list(start_node):
    # 1,100 users are more than one connection may watch (presence.max-watched,
    # 1000): every one of them must still be counted when it goes offline.
    n = start_node("--presence.grace-period=50ms")
    r = bench("churn", url(n), "--connections=1100", "--duration=0.5", "--cycles=1",
              "--reconnect-delay-ms=1000")
    assert r["presence"]["source"] == "watcher", "presence source"
    assert r["flaps"] == 1100, "offline events counted, one per user"
    assert r["presence"]["not_online"] == 0, "users not online at the end"


def test_refuses_other_hosts():
    for bad in ("ws://10.0.0.1:80/ws", "ws://example.com:80/ws", "http://127.0.0.1:80/ws",
                "ws://0.0.0.0:80/ws"):
        p = subprocess.run([BENCH, "idle", f"--url={bad}"], capture_output=True, timeout=10)
        assert p.returncode == 2, f"exit status for --url={bad}"
        assert p.stdout == b"", f"stdout for --url={bad}"

