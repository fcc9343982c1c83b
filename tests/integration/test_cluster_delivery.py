"""Cluster delivery against a real redis-server (SPEC 3 timing/ordering/
identity across nodes, SPEC 5 exactly once while everything is up, SPEC 2
API across nodes, SPEC 6 hubnode_messages_remote_total).

Three nodes on one redis-server, a fresh redis.key-prefix per test (conftest's
fixtures). SPEC 3: a connection is reachable from other nodes at most 1 s
after its welcome; tests that send across nodes wait for that point (after_welcome) or, where
that bound itself is the subject, send repeatedly and check which sends must
have arrived.
"""

import asyncio
import json
import time

import pytest

from hubnode_testing import Client, http, in_thread, metric, recv_until, wait_ready

API_KEY = "cluster-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
FAST = ("--hub.rate-limit=1000",)  # 300-message bursts stay under the limit
DUP_WINDOW = 0.5  # how long a test keeps listening for a duplicate


async def three_nodes(cluster_node, *opts, **kw):
    """Three nodes started by the cluster_node fixture, ready (Redis up)."""
    out = [cluster_node(nid, *opts, **kw) for nid in ("d-a", "d-b", "d-c")]
    for n in out:
        await in_thread(wait_ready, n)
    return out


async def connect(node, user):
    c = await Client.connect(node, user)
    c.t_welcome = time.monotonic()
    return c


async def after_welcome(*clients):
    """SPEC 3 timing: from other nodes, a connection is reachable at most 1 s
    after its welcome. Waits until that point for the latest of them."""
    t = max(c.t_welcome for c in clients) + 1.0
    await asyncio.sleep(max(0.0, t - time.monotonic()))


async def collect(c, pred, n, timeout, what):
    """Read frames until n frames satisfy pred; returns them (others skipped)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"{what}: {len(got)} of {n} within {timeout}s; last: {got[-3:]!r}")
        m = await c.recv(left)
        if pred(m):
            got.append(m)
    return got


async def drain_window(c, seconds):
    """Every message frame that arrives within `seconds` (a duplicate window)."""
    return [m for m in await frames_within(c, seconds) if m.get("type") == "message"]


async def frames_within(c, seconds):
    """Every frame (parsed) that arrives within `seconds`."""
    out = []
    t_end = time.monotonic() + seconds
    while True:
        left = t_end - time.monotonic()
        if left <= 0:
            return out
        try:
            out.append(json.loads(await asyncio.wait_for(c.ws.recv(), left)))
        except asyncio.TimeoutError:
            return out
        except Exception:  # noqa: BLE001 - closed: nothing more will come
            return out


def is_msg(frm=None):
    return lambda m: m.get("type") == "message" and (frm is None or m.get("from") == frm)


async def close_all(*cs):
    for c in cs:
        await c.close()


async def test_every_connection_on_every_node_exactly_once(cluster_node):
    a, b, c = await three_nodes(cluster_node)
    s = await connect(a, 301)
    s_b = await connect(b, 301)  # the sender's own other connection
    targets = [await connect(a, 300), await connect(a, 300), await connect(b, 300),
               await connect(c, 300)]
    await after_welcome(s, s_b, *targets)
    n = 20
    for i in range(n):
        await s.send_msg("300", {"i": i}, ref=f"m{i}")
    acks = await collect(s, lambda m: m.get("type") == "ack", n, 5.0, "acks")
    assert [x.get("ref") for x in acks] == [f"m{i}" for i in range(n)], "ack refs in order"
    assert all(x.get("online") is True for x in acks), f"ack online: {acks[:3]!r}"
    ids = [x.get("id") for x in acks]
    assert len(set(ids)) == n, "distinct message ids"
    where = ["A", "A", "B", "C"]
    for t, wh in zip(targets, where):
        got = await collect(t, is_msg(), n, 5.0, f"messages on node {wh}")
        assert [m.get("data") for m in got] == [{"i": i} for i in range(n)], (
            f"data in order on node {wh}")
        assert [m.get("id") for m in got] == ids, f"ids (= the acks' ids) on node {wh}"
        assert all(m.get("from") == "301" for m in got), f"from on node {wh}: {got[:2]!r}"
    # to oneself: the sender's connection that sent it (node A) and the one on B
    await s.send_msg("301", {"self": 1}, ref="self")
    got = await collect(s, lambda m: m.get("type") in ("ack", "message"), 2, 3.0,
                        "ack and message to self on the sending connection")
    ack = next((m for m in got if m.get("type") == "ack"), None)
    assert ack is not None, f"no ack among {got!r}"
    mine = [m for m in got if m.get("type") == "message"]
    assert len(mine) == 1, f"message to self on the sending connection: {got!r}"
    m, _ = await recv_until(s_b, is_msg("301"), 3.0, "message to self on B")
    for m, wh in ((mine[0], "A (the sending connection)"), (m, "B")):
        assert (m.get("id"), m.get("from"), m.get("data")) == (
            ack.get("id"), "301", {"self": 1}), f"self on {wh}"
    # no copy more: a window after everything arrived
    for t, wh in zip(targets + [s, s_b], where + ["A (sender)", "B (sender)"]):
        extra = await drain_window(t, DUP_WINDOW)
        assert extra == [], f"SPEC 5: duplicate messages on node {wh}"
    await close_all(s, s_b, *targets)


async def test_three_hundred_in_order_on_other_nodes(cluster_node):
    a, b, c = await three_nodes(cluster_node, *FAST)
    s = await connect(a, 302)
    rb = await connect(b, 303)
    rc = await connect(c, 303)
    await after_welcome(s, rb, rc)
    n = 300
    for i in range(n):
        await s.send_msg("303", {"seq": i})
    acks = await collect(s, lambda m: m.get("type") == "ack", n, 10.0, "acks")
    assert all(x.get("online") is True for x in acks), "every ack online true"
    for r, wh in ((rb, "B"), (rc, "C")):
        got = await collect(r, is_msg("302"), n, 10.0, f"messages on {wh}")
        seqs = [m.get("data", {}).get("seq") for m in got]
        assert seqs == list(range(n)), (
            f"SPEC 3 ordering across nodes on {wh} "
            f"(first difference at "
            f"{next((i for i, v in enumerate(seqs) if v != i), None)})")
        assert [m.get("id") for m in got] == [x.get("id") for x in acks], f"ids on {wh}"
        extra = await drain_window(r, DUP_WINDOW)
        assert extra == [], f"duplicates on {wh}"
    await close_all(s, rb, rc)


async def test_ack_online_across_nodes(redis_client, cluster_node, key_prefix):
    a, b, _c = await three_nodes(cluster_node, grace="1s")
    s = await connect(a, 304)
    r = await connect(b, 305)
    await after_welcome(s, r)
    await s.send_msg("305", {"x": 1}, ref="there")
    ack, _ = await recv_until(s, lambda m: m.get("type") == "ack", 3.0, "ack")
    assert (ack.get("ref"), ack.get("online")) == ("there", True), (
        "ack for a user only on another node")
    m = await r.expect("message")
    assert m.get("id") == ack.get("id"), "ack id = message id across nodes"
    await s.send_msg("306", {"x": 1}, ref="nobody")
    ack, _ = await recv_until(s, lambda m: m.get("type") == "ack", 3.0, "ack")
    assert (ack.get("ref"), ack.get("online")) == ("nobody", False), "ack for nobody"
    # during 305's grace period (1s) on node B: still online
    t0 = time.monotonic()
    await r.close()
    await s.send_msg("305", {"x": 2}, ref="grace")
    ack, _ = await recv_until(s, lambda m: m.get("type") == "ack", 3.0, "ack")
    assert time.monotonic() - t0 < 0.8, "test precondition: ack within the grace period"
    assert (ack.get("ref"), ack.get("online")) == ("grace", True), (
        "ack for a user in its grace period on another node (SPEC 4: online)")
    await s.send({"type": "presence", "userIds": ["305"]})
    pr, _ = await recv_until(s, lambda m: m.get("type") == "presence", 3.0, "presence")
    assert time.monotonic() - t0 < 0.9, "test precondition: answer within the grace period"
    assert pr.get("users") == {"305": True}, (
        "presence answer during the grace period on "
        "another node (SPEC 4: agrees with ack.online)")
    # after the grace period (user out of P`online`): offline
    deadline = time.monotonic() + 3.0
    while redis_client.sismember(key_prefix + "online", "305"):
        assert time.monotonic() < deadline, "user 305 still online 3 s after its close"
        await asyncio.sleep(0.02)
    await s.send_msg("305", {"x": 3}, ref="gone")
    ack, _ = await recv_until(s, lambda m: m.get("type") == "ack", 3.0, "ack")
    assert (ack.get("ref"), ack.get("online")) == ("gone", False), (
        "ack after the user left P`online`")
    await close_all(s)


async def test_api_post_reaches_other_nodes(cluster_node):
    a, b, c = await three_nodes(cluster_node, f"--server.api-key={API_KEY}")
    rb = await connect(b, 307)
    rc = await connect(c, 307)
    await after_welcome(rb, rc)
    r = await in_thread(http, a, "POST", "/api/users/307/messages", headers=AUTH,
                        body={"data": {"api": [1, 2]}})
    assert r.status == 202, f"POST answered {r.body[:200]!r}"
    j = r.json()
    assert set(j) == {"id", "online"}, f"202 body {j!r}"
    assert j.get("online") == True, "202 online for a user on other nodes"
    for x, wh in ((rb, "B"), (rc, "C")):
        m = await x.expect("message")
        assert (m.get("id"), m.get("from"), m.get("data")) == (
            j["id"], "server", {"api": [1, 2]}), f"API message on {wh}"
        assert isinstance(m.get("ts"), int), f"ts on {wh}: {m!r}"
    for x, wh in ((rb, "B"), (rc, "C")):
        extra = await drain_window(x, DUP_WINDOW)
        assert extra == [], f"duplicates on {wh}"
    r = await in_thread(http, a, "POST", "/api/users/308/messages", headers=AUTH,
                        body={"data": 1})
    assert r.status == 202, "POST to nobody"
    assert r.json().get("online") == False, "202 online for nobody"
    await close_all(rb, rc)


async def test_reachable_from_other_node_1s_after_welcome(cluster_node):
    # SPEC 3: from other nodes once its node has subscribed, at most 1 s after
    # the welcome. Senders on A send every 50 ms from the welcome on; every
    # send made 1 s or more after the welcome (client-side, so at least 1 s
    # after the node sent it) must arrive, exactly once and in order.
    a, b, _c = await three_nodes(cluster_node, *FAST)
    senders = [await connect(a, 350 + i) for i in range(5)]

    async def one(i):
        s = senders[i]
        uid = str(360 + i)
        r = await connect(b, uid)
        sent = []
        seq = 0
        while time.monotonic() < r.t_welcome + 1.5:
            await s.send_msg(uid, {"seq": seq})
            sent.append((time.monotonic() - r.t_welcome, seq))
            seq += 1
            await asyncio.sleep(0.05)
        must = [q for t, q in sent if t >= 1.0]
        got = []
        deadline = time.monotonic() + 3.0
        while not got or got[-1] != sent[-1][1]:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                m = await r.recv(left)
            except AssertionError:
                break
            if m.get("type") == "message":
                got.append(m.get("data", {}).get("seq"))
        missing = [q for q in must if q not in got]
        assert not missing, (
            f"user {uid}: sends made >= 1 s after the welcome did not "
            f"arrive: {missing} (received {got}; send times "
            f"{[(round(t, 2), q) for t, q in sent]})")
        assert got == sorted(set(got)), f"user {uid}: order / duplicates"
        return r

    rs_ = await asyncio.gather(*(one(i) for i in range(5)))
    await close_all(*senders, *rs_)


async def test_remote_counter_moves(cluster_node):
    a, b, _c = await three_nodes(cluster_node)
    s = await connect(a, 370)
    r = await connect(b, 371)
    await after_welcome(s, r)
    name = "hubnode_messages_remote_total"
    a0 = await in_thread(metric, a, name)
    b0 = await in_thread(metric, b, name)
    bd0 = await in_thread(metric, b, "hubnode_messages_delivered_total")
    assert a0 is not None and b0 is not None, f"{name} missing from /metrics"
    for i in range(5):
        await s.send_msg("371", {"i": i})
    await collect(r, is_msg("370"), 5, 3.0, "messages on B")
    a1 = await in_thread(metric, a, name)
    b1 = await in_thread(metric, b, name)
    bd1 = await in_thread(metric, b, "hubnode_messages_delivered_total")
    assert a1 - a0 >= 5, (
        f"{name} on the sending node moved by {a1 - a0} for 5 messages "
        f"to a user on another node")
    assert b1 - b0 == 0, f"{name} on the receiving node (it published nothing)"
    assert bd1 - bd0 == 5, "hubnode_messages_delivered_total on the receiving node"
    await close_all(s, r)

