"""Cluster operations against a real redis-server: a node started while
Redis is down, a node killed under traffic, reconnect churn across three
nodes, the startup line and heartbeat key (SPEC 1, 2, 4, 5, 6).

(A bad redis.url exiting 2 is covered by test_process.)
"""

import asyncio
import signal
import socket
import time

import pytest

from hubnode_testing import (Client, REPO, apoll_until, get_json, http, in_thread, metric,
                             recv_until, wait_ready)

GRACE = 0.3
HEARTBEAT = 0.2
TTL = 1.0
FAST = ("--hub.rate-limit=1000",)


async def close_all(*cs):
    for c in cs:
        await c.close()


@pytest.mark.redis_server(started=False)
async def test_node_started_while_redis_down_turns_ready(redis_client, redis_server, cluster_node,
                                                        key_prefix):
    p = key_prefix
    n = cluster_node("ops-down")
    assert n.node == "ops-down", "node id on the listening line"
    h = await in_thread(get_json, n, "/healthz")
    assert (h.get("status"), h.get("presence"), h.get("redis"), h.get("node")) == (
        "ok", "redis", "down", "ops-down"), "/healthz with Redis down"
    r = await in_thread(http, n, "GET", "/readyz")
    assert r.status == 503, "/readyz with Redis down"
    j = r.json()
    assert (isinstance(j.get("error"), str) and j["error"]
            and isinstance(j.get("message"), str) and j["message"]), (
        f"/readyz 503 body is not a SPEC 2 error body: {j!r}")
    assert await in_thread(metric, n, "hubnode_redis_up") == 0.0, "hubnode_redis_up"
    # local clients are served
    c1 = await Client.connect(n, 401)
    c2 = await Client.connect(n, 402)
    await c1.send_msg("402", {"local": True}, ref="l1")
    m = await c2.expect("message")
    assert (m.get("from"), m.get("data")) == ("401", {"local": True}), "local message"
    ack, _ = await recv_until(c1, lambda x: x.get("type") == "ack", 3.0, "ack")
    assert (ack.get("id"), ack.get("online")) == (m.get("id"), True), "ack"
    h = await in_thread(get_json, n, "/healthz")
    assert h.get("connections") == 2, "/healthz connections"

    await in_thread(redis_server.start)
    deadline = redis_server.started_at + 5.0

    def left():
        return max(0.0, deadline - time.monotonic())
    await apoll_until(lambda: http(n, "GET", "/readyz").status == 200, left(),
                      what="/readyz 200 after redis-server started")
    h = await in_thread(get_json, n, "/healthz")
    assert h.get("redis") == "up", "/healthz redis after redis-server started"
    await apoll_until(lambda: metric(n, "hubnode_redis_up") == 1.0, left(),
                      what="hubnode_redis_up 1")
    await apoll_until(lambda: redis_client.smembers(p + "online") == {"401", "402"}, left(),
                      what="the node's users in P`online` once Redis is up")
    await apoll_until(lambda: redis_client.hgetall(p + "presence:401") == {"ops-down": "1"},
                      left(), what="P`presence:401` once Redis is up")
    await apoll_until(lambda: redis_client.exists(p + "node:ops-down"), left(),
                      what="P`node:ops-down` heartbeat once Redis is up")
    await close_all(c1, c2)


@pytest.mark.timeout(90)
async def test_sigkill_node_under_traffic(redis_client, cluster_node, subscriber, key_prefix):
    # Senders on A and C keep sending to users on B and C (from A) and on A
    # (from C); B is killed in the middle. Traffic between A and C is never
    # interrupted: every message arrives exactly once and in order.
    p = key_prefix
    sub = subscriber(p + "presence")
    a, b, c = [cluster_node(nid, *FAST) for nid in ("k-a", "k-b", "k-c")]
    for n in (a, b, c):
        await in_thread(wait_ready, n)
    s_a = await Client.connect(a, 410)
    s_c = await Client.connect(c, 411)
    r_c = await Client.connect(c, 412)
    r_a = await Client.connect(a, 413)
    r_b = await Client.connect(b, 414)
    t_last = time.monotonic()
    await asyncio.sleep(max(0.0, t_last + 1.0 - time.monotonic()))  # SPEC 3 timing

    sent = {"412": 0, "413": 0, "414": 0}
    stop = asyncio.Event()

    async def pump(s, tos):
        while not stop.is_set():
            for to in tos:
                await s.send_msg(to, {"seq": sent[to]})
                sent[to] += 1
            await asyncio.sleep(0.02)

    async def reader(r, frm):
        seqs = []
        while True:
            try:
                m = await r.recv(2.0)
            except AssertionError:
                return seqs
            if m.get("type") == "message" and m.get("from") == frm:
                seqs.append(m["data"]["seq"])
                if stop.is_set() and seqs[-1] == sent[r.user] - 1:
                    return seqs

    readers = [asyncio.ensure_future(reader(r_c, "410")),
               asyncio.ensure_future(reader(r_a, "411"))]
    pumps = [asyncio.ensure_future(pump(s_a, ["412", "414"])),
             asyncio.ensure_future(pump(s_c, ["413"]))]
    await asyncio.sleep(1.0)
    t_kill = time.monotonic()
    b.signal(signal.SIGKILL)
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*pumps)
    got_c, got_a = await asyncio.gather(*readers)
    assert got_c == list(range(sent["412"])), (
        f"A -> C while B was killed ({sent['412']} sent, {len(got_c)} received)")
    assert got_a == list(range(sent["413"])), (
        f"C -> A while B was killed ({sent['413']} sent, {len(got_a)} received)")
    assert a.alive() and c.alive(), "a surviving node died"
    # B's user goes offline (SPEC 4.4)
    bound = TTL + HEARTBEAT + 1.0
    await apoll_until(lambda: not redis_client.sismember(p + "online", "414"),
                      max(0.0, t_kill + bound - time.monotonic()),
                      what="user 414 (only on the killed node) out of P`online`")
    # the senders still get answers
    await s_a.send({"type": "ping", "ref": "after"})
    await recv_until(s_a, lambda m: m.get("type") == "pong" and m.get("ref") == "after",
                     3.0, "pong on A")
    assert sub.error is None, f"subscriber: {sub.error}"
    await close_all(s_a, s_c, r_c, r_a, r_b)


@pytest.mark.timeout(120)
async def test_reconnect_churn_three_nodes_no_offline_events(redis_client, cluster_node,
                                                             subscriber, key_prefix):
    # 30 users hop between three nodes for 4 s: some close before opening
    # the next connection (within the grace period, 1s here so that a loaded
    # machine still reconnects within it), some open the next one first.
    # Nobody ever goes offline, so P`presence` carries no offline event;
    # afterwards each user is counted once, on its last node.
    p = key_prefix
    users = [str(u) for u in range(420, 450)]
    sub = subscriber(p + "presence")
    nodes = [cluster_node(nid, grace="1s") for nid in ("c-a", "c-b", "c-c")]
    for n in nodes:
        await in_thread(wait_ready, n)
    conns = {u: await Client.connect(nodes[i % 3], u) for i, u in enumerate(users)}
    await apoll_until(lambda: redis_client.smembers(p + "online") == set(users), 2.0,
                      what="all users online")
    where = {u: i % 3 for i, u in enumerate(users)}
    gaps = []
    t_end = time.monotonic() + 4.0

    async def hop(i, u):
        k = 0
        while time.monotonic() < t_end:
            k += 1
            nxt = (where[u] + 1 + (k + i) % 2) % 3
            if (k + i) % 3 == 0:  # open first, then close
                new = await Client.connect(nodes[nxt], u)
                await conns[u].close()
            else:  # close first, reopen within the grace period
                t0 = time.monotonic()
                await conns[u].close()
                new = await Client.connect(nodes[nxt], u)
                gaps.append(time.monotonic() - t0)
            conns[u] = new
            where[u] = nxt
            await asyncio.sleep((20 + (i * 7 + k * 13) % 80) / 1000)

    await asyncio.gather(*(hop(i, u) for i, u in enumerate(users)))
    assert gaps and max(gaps) < 1.0, (
        f"test precondition: a reconnect took "
        f"{max(gaps):.3f}s, longer than the grace period")
    t_done = time.monotonic()
    ids = [n.node for n in nodes]
    expected = {u: {ids[where[u]]: "1"} for u in users}

    def right():
        return all(redis_client.hgetall(p + "presence:" + u) == expected[u] for u in users)
    await apoll_until(right, max(0.0, t_done + 1.0 + 1.0 - time.monotonic()),
                      what="each user counted once on its last node after the grace "
                           "periods")
    offs = [e for _, e in sub.events() if isinstance(e, dict) and e.get("online") is False]
    assert len(offs) == 0, (
        f"offline events on P`presence` during the churn (first: {offs[:3]!r})")
    assert redis_client.smembers(p + "online") == set(users), "P`online` after the churn"
    await close_all(*conns.values())


async def test_startup_line_and_heartbeat_key(redis_client, cluster_node, key_prefix):
    p = key_prefix
    # a given node id
    n = cluster_node("ops-line")
    assert n.line.endswith(" node=ops-line presence=redis"), f"line {n.line!r}"
    # the Redis connection may come up just after the listening line
    await apoll_until(lambda: get_json(n, "/healthz").get("redis") == "up", 2.0,
                      what="/healthz redis up")
    h = await in_thread(get_json, n, "/healthz")
    assert (h.get("node"), h.get("presence"), h.get("redis")) == ("ops-line", "redis", "up"), (
        "/healthz")
    assert (await in_thread(http, n, "GET", "/readyz")).status == 200, "/readyz"
    await apoll_until(lambda: redis_client.exists(p + "node:ops-line"), 1.0,
                      what="P`node:ops-line`")
    ttl = redis_client.pttl(p + "node:ops-line")
    assert 0 < ttl <= 1000, (
        f"P`node:ops-line` TTL {ttl} ms, expected at most "
        f"node-ttl (1s)")
    assert redis_client.sismember(p + "nodes", "ops-line"), (
        f"P`nodes`: {redis_client.smembers(p + 'nodes')}")
    assert await in_thread(metric, n, "hubnode_redis_up") == 1.0, "hubnode_redis_up"
    # the key is refreshed: still there after several TTLs
    t_end = time.monotonic() + 2.5
    while time.monotonic() < t_end:
        assert redis_client.exists(p + "node:ops-line"), (
            "heartbeat key expired while the "
            "node runs")
        await asyncio.sleep(0.05)
    await in_thread(n.close)
    # a generated node id: hostname-pid-random (SPEC 1 option table)
    n = cluster_node(None)
    want = f"{socket.gethostname()}-{n.pid}-"
    assert n.node.startswith(want) and len(n.node) > len(want), (
        f"generated node id {n.node!r} is not hostname-pid-random")
    await apoll_until(lambda: redis_client.exists(p + "node:" + n.node), 1.0,
                      what="heartbeat key of a generated node id")


async def test_sample_cluster_config_starts(redis_client, cluster_node, key_prefix):
    # conf/cluster-node.ini, with what differs per test on the command line
    p = key_prefix
    conf = str(REPO / "conf" / "cluster-node.ini")
    n = cluster_node("ops-conf", f"--config-file={conf}")
    # the Redis connection may come up just after the listening line
    await apoll_until(lambda: get_json(n, "/healthz").get("redis") == "up", 2.0,
                      what="/healthz redis up")
    h = await in_thread(get_json, n, "/healthz")
    assert (h.get("node"), h.get("presence"), h.get("redis")) == ("ops-conf", "redis", "up"), (
        "/healthz with conf/cluster-node.ini")
    c = await Client.connect(n, 460)
    await apoll_until(lambda: redis_client.sismember(p + "online", "460"), 1.0,
                      what="user in P`online` with the sample config")
    await c.close()

