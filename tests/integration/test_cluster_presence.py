"""Cluster presence against a real redis-server: the seven guarantees of
SPEC section 4, one test each (plus variants), and what clients and the API
see of presence across nodes.

Every test gets its own redis-server on a free loopback port and its nodes
with a fresh redis.key-prefix (conftest's redis_server, key_prefix and
cluster_node fixtures), heartbeat 200ms, node-ttl 1s and grace 300ms unless
the test says otherwise. Waits poll Redis (every few ms) up to the
bound SPEC gives; a window to count duplicates is the only fixed wait.
"""

import asyncio
import os
import signal
import time

import pytest

from hubnode_testing import (Client, REDIS_DOWN, apoll_until, get_json, http, in_thread, metric,
                             now_ms, recv_until, wait_ready)

GRACE = 0.3      # CLUSTER_TIMINGS in hubnode_testing: grace 300ms,
HEARTBEAT = 0.2  # heartbeat 200ms,
TTL = 1.0        # node-ttl 1s
DUP_WINDOW = 0.5  # how long a test keeps listening for a duplicate event
API_KEY = "cluster-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


# ---------------------------------------------------------------- helpers


class Keys:
    """Key and channel names under one prefix (SPEC 4 layout)."""

    def __init__(self, prefix):
        self.p = prefix
        self.online = prefix + "online"
        self.nodes = prefix + "nodes"
        self.channel = prefix + "presence"

    def presence(self, uid):
        return f"{self.p}presence:{uid}"

    def node(self, nid):
        return f"{self.p}node:{nid}"


def check_event(e, what="presence event"):
    """SPEC 4: {"userId":"ID","online":BOOL,"node":"NODEID","ts":MS}."""
    assert isinstance(e, dict), f"{what}: payload is not a JSON object: {e!r}"
    assert set(e) == {"userId", "online", "node", "ts"}, f"{what}: fields of {e!r}"
    assert isinstance(e["userId"], str) and e["userId"].isdigit(), (
        f"{what}: userId is not a decimal string: {e!r}")
    assert isinstance(e["online"], bool), f"{what}: online is not a boolean: {e!r}"
    assert isinstance(e["node"], str) and e["node"], f"{what}: node is not a string: {e!r}"
    assert isinstance(e["ts"], int) and not isinstance(e["ts"], bool), (
        f"{what}: ts is not an integer (unix ms): {e!r}")
    assert abs(e["ts"] - now_ms()) < 60_000, f"{what}: ts is not unix ms of now: {e!r}"
    return e


def events(sub, k, uid=None, online=None):
    """Presence events on P`presence` (every one shape-checked), filtered."""
    out = []
    for _t, e in sub.events(k.channel):
        check_event(e)
        if uid is not None and e["userId"] != str(uid):
            continue
        if online is not None and e["online"] is not online:
            continue
        out.append(e)
    return out


async def wait_events(sub, k, uid, online, n, timeout, what):
    """Wait until at least n events for (uid, online) are on the channel."""

    def pred(_msgs):
        return len(events(sub, k, uid, online)) >= n
    ok = await in_thread(sub.wait_for, pred, timeout)
    if not ok:
        pytest.fail(f"{what}: {len(events(sub, k, uid, online))} "
                    f"{'online' if online else 'offline'} event(s) for user {uid} within "
                    f"{timeout:.2f}s, expected {n}; all events: {events(sub, k)!r}")
    return events(sub, k, uid, online)


async def start_nodes(cluster_node, ids, *opts, **kw):
    """Nodes started by the cluster_node fixture, ready (Redis up)."""
    nodes = [cluster_node(nid, *opts, **kw) for nid in ids]
    for n in nodes:
        await in_thread(wait_ready, n)
    return nodes


async def wait_online(db, k, uid, timeout=1.0, what=""):
    await apoll_until(lambda: db.sismember(k.online, str(uid)), timeout,
                      what=f"{what + ': ' if what else ''}user {uid} in {k.online}")


async def wait_hash(db, k, uid, expected, timeout=1.0, what=""):
    """Poll P`presence:ID` until it equals expected ({node: count str}; {} =
    the key does not exist)."""
    last = {}

    def ok():
        nonlocal last
        last = db.hgetall(k.presence(uid))
        return last == expected
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ok():
                return
        except REDIS_DOWN:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what + ': ' if what else ''}{k.presence(uid)} is {last!r}, expected "
                        f"{expected!r} within {timeout}s")
        await asyncio.sleep(0.02)


async def close_all(*clients):
    for c in clients:
        if c is not None:
            await c.close()


async def presence_api(node, uid):
    return await in_thread(get_json, node, f"/api/users/{uid}/presence", headers=AUTH)


# ---------------------------------------------------------------- guarantee 1


async def test_g1_online_within_1s_of_welcome(redis_client, cluster_node, subscriber, key_prefix):
    k = Keys(key_prefix)
    sub = subscriber(k.channel)
    a, = await start_nodes(cluster_node, ["g1-a"])
    w0 = now_ms()
    c1 = await Client.connect(a, 101)
    t_w = time.monotonic()
    await wait_online(redis_client, k, 101, timeout=1.0, what="SPEC 4.1 (1 s after the welcome)")
    await wait_hash(redis_client, k, 101, {"g1-a": "1"},
                    timeout=max(0.0, t_w + 1.0 - time.monotonic()),
                    what="SPEC 4.1 node -> count")
    c2 = await Client.connect(a, 101)
    await wait_hash(redis_client, k, 101, {"g1-a": "2"}, timeout=1.0,
                    what="second connection counted")
    ons = await wait_events(sub, k, 101, True, 1, 1.0, "online event")
    await asyncio.sleep(DUP_WINDOW)
    ons = events(sub, k, 101, True)
    assert len(ons) == 1, (
        f"online events for user 101 (one transition; a second connection "
        f"is none): {ons!r}")
    e = ons[0]
    assert e["node"] == "g1-a", "online event node"
    assert w0 <= e["ts"] <= now_ms(), (
        f"online event ts {e['ts']} not between the "
        f"connect ({w0}) and now")
    assert events(sub, k, 101, False) == [], "offline events"
    assert redis_client.sismember(k.nodes, "g1-a"), (
        f"{k.nodes} lacks the node: {redis_client.smembers(k.nodes)}")
    await close_all(c1, c2)


# ---------------------------------------------------------------- guarantee 2


async def observe_leave(db, k, uid, t0, t1, grace, what):
    """Poll P`online` and P`presence:ID` after the last close (started at t0,
    finished at t1) until both are gone. SPEC 4.2: no sooner than grace after
    the close, no later than grace + 1 s. Returns the list of hash values seen
    while the user was still online."""
    hashes = []
    gone_online = gone_hash = None
    deadline = t1 + grace + 1.0
    while True:
        ts = time.monotonic()
        present = db.sismember(k.online, str(uid))
        h = db.hgetall(k.presence(uid))
        tr = time.monotonic()
        if not present and gone_online is None:
            gone_online = tr
            assert tr >= t0 + grace, (
                f"{what}: user {uid} left {k.online} "
                f"{tr - t0:.3f}s after the close began, sooner than the grace period "
                f"{grace}s")
        if not h and gone_hash is None:
            gone_hash = tr
            assert tr >= t0 + grace, (
                f"{what}: {k.presence(uid)} deleted {tr - t0:.3f}s "
                f"after the close began, sooner than the grace period {grace}s")
        if h:
            hashes.append((ts - t0, h))
        if gone_online is not None and gone_hash is not None:
            return hashes
        if ts > deadline:
            pytest.fail(f"{what}: {tr - t1:.3f}s after the close, user {uid} "
                        f"{'is still' if present else 'is no longer'} in {k.online} and "
                        f"{k.presence(uid)} = {h!r} (SPEC 4.2: gone within grace {grace}s + 1 s)")
        await asyncio.sleep(0.01)


async def test_g2_leaves_after_grace_within_1s(redis_client, cluster_node, subscriber, key_prefix):
    k = Keys(key_prefix)
    sub = subscriber(k.channel)
    a, = await start_nodes(cluster_node, ["g2-a"])
    c = await Client.connect(a, 102)
    c2 = await Client.connect(a, 102)
    await wait_online(redis_client, k, 102)
    await wait_hash(redis_client, k, 102, {"g2-a": "2"})
    await wait_events(sub, k, 102, True, 1, 1.0, "online event")
    await c2.close()
    await wait_hash(redis_client, k, 102, {"g2-a": "1"}, what="one of two connections closed")
    assert redis_client.sismember(k.online, "102"), "user left online with a connection still open"
    w0 = now_ms()
    t0 = time.monotonic()
    await c.close()
    t1 = time.monotonic()
    await observe_leave(redis_client, k, 102, t0, t1, GRACE, "SPEC 4.2")
    offs = await wait_events(sub, k, 102, False, 1, 1.0, "offline event")
    await asyncio.sleep(DUP_WINDOW)
    offs = events(sub, k, 102, False)
    assert len(offs) == 1, f"offline events for user 102 (exactly one): {offs!r}"
    e = offs[0]
    assert (e["userId"], e["online"], e["node"]) == ("102", False, "g2-a"), "offline event"
    assert w0 <= e["ts"] <= now_ms(), (
        f"offline event ts {e['ts']} is not between the "
        f"close ({w0}) and now ({now_ms()})")
    assert len(events(sub, k, 102, True)) == 1, "online events (one transition)"


async def test_g2_zero_count_kept_through_grace(redis_client, cluster_node, key_prefix):
    # SPEC 4 layout: a count of 0 stays through the grace period, and the key
    # goes with its last field when the grace period ends (grace 1s here, so
    # the zero has a wide window to be seen in).
    k = Keys(key_prefix)
    a, = await start_nodes(cluster_node, ["g2z-a"], grace="1s")
    c = await Client.connect(a, 120)
    await wait_hash(redis_client, k, 120, {"g2z-a": "1"})
    t0 = time.monotonic()
    await c.close()
    t1 = time.monotonic()
    hashes = await observe_leave(redis_client, k, 120, t0, t1, 1.0, "grace 1s")
    zeros = [t for t, h in hashes if h == {"g2z-a": "0"}]
    assert zeros, (
        f"{k.presence(120)} never held node -> 0 during the grace period; "
        f"seen: {hashes[:3]!r} ... {hashes[-3:]!r}")
    late_ones = [(round(t, 3), h) for t, h in hashes if h != {"g2z-a": "0"} and t > zeros[0]]
    assert late_ones == [], "values after the zero was written"


# ---------------------------------------------------------------- guarantee 3


class OnlineMonitor:
    """Polls SISMEMBER for some users every few ms; records every absence."""

    def __init__(self, db, k, uids):
        self.db, self.k, self.uids = db, k, [str(u) for u in uids]
        self.absent = []
        self.polls = 0
        self.task = None
        self.stop_flag = False
        self.error = None

    async def _run(self):
        while not self.stop_flag:
            try:
                online = self.db.smembers(self.k.online)
            except REDIS_DOWN as e:  # Redis gone (a failing test's teardown)
                self.error = e
                return
            for u in self.uids:
                if u not in online:
                    self.absent.append((time.monotonic(), u))
            self.polls += 1
            await asyncio.sleep(0.005)

    def start(self):
        self.task = asyncio.ensure_future(self._run())
        return self

    async def stop(self):
        self.stop_flag = True
        await self.task
        assert self.error is None, f"monitor lost Redis: {self.error!r}"


async def test_g3_reopen_elsewhere_within_grace_no_flap(redis_client, cluster_node, subscriber,
                                                        key_prefix):
    k = Keys(key_prefix)
    sub = subscriber(k.channel)
    a, b = await start_nodes(cluster_node, ["g3-a", "g3-b"])
    c = await Client.connect(a, 103)
    await wait_online(redis_client, k, 103)
    await wait_events(sub, k, 103, True, 1, 1.0, "online event")
    mon = OnlineMonitor(redis_client, k, [103]).start()
    t0 = time.monotonic()
    await c.close()
    c2 = await Client.connect(b, 103)
    gap = time.monotonic() - t0
    assert gap < GRACE, (
        f"test precondition: the reconnect took {gap:.3f}s, not within "
        f"the grace period")
    # A's zero count goes when its grace period ends; watch until then + 1 s
    await wait_hash(redis_client, k, 103, {"g3-b": "1"}, timeout=GRACE + 1.0,
                    what="after the grace period only node B counts the user")
    await asyncio.sleep(max(0.0, t0 + GRACE + 1.0 - time.monotonic()))
    await mon.stop()
    assert mon.absent[:5] == [], (
        f"SPEC 4.3: user 103 left {k.online} (polled {mon.polls} "
        f"times)")
    assert events(sub, k, 103, False) == [], "SPEC 4.3: offline events"
    assert len(events(sub, k, 103, True)) == 1, "online events (the user never went offline)"
    await close_all(c2)


@pytest.mark.timeout(120)
async def test_g3_churn_20_users_10_cycles_no_offline_events(redis_client, cluster_node,
                                                             subscriber, key_prefix):
    k = Keys(key_prefix)
    users = list(range(200, 220))
    sub = subscriber(k.channel)
    # grace 1s: a loaded machine still reconnects 20 users within it
    a, b = await start_nodes(cluster_node, ["g3c-a", "g3c-b"], grace="1s")
    conns = {u: await Client.connect(a, u) for u in users}
    for u in users:
        await wait_online(redis_client, k, u)
    await in_thread(sub.wait_for, lambda m: len(events(sub, k, None, True)) >= len(users),
                    2.0)
    mon = OnlineMonitor(redis_client, k, users).start()
    gaps = []
    where = {}

    async def churn(u):
        rnd = int.from_bytes(os.urandom(1), "big")
        for cycle in range(10):
            node = b if cycle % 2 == 0 else a
            t0 = time.monotonic()
            await conns[u].close()
            conns[u] = await Client.connect(node, u)
            gaps.append(time.monotonic() - t0)
            where[u] = node.node
            # held 100-250 ms: the churn outlasts the grace period, so
            # earlier grace periods end while later reconnects happen
            await asyncio.sleep((100 + (rnd + cycle * 37) % 150) / 1000)

    await asyncio.gather(*(churn(u) for u in users))
    assert max(gaps) < 1.0, (
        f"test precondition: a reconnect took {max(gaps):.3f}s, "
        f"not within the grace period")
    # every zero count left behind ends with its grace period
    t_end = time.monotonic()
    for u in users:
        await wait_hash(redis_client, k, u, {where[u]: "1"},
                        timeout=max(0.05, t_end + 1.0 + 1.0 - time.monotonic()),
                        what=f"user {u} after the churn")
    await mon.stop()
    absent_users = sorted({u for _, u in mon.absent})
    assert absent_users == [], f"SPEC 4.3: users that left {k.online} during the churn"
    offs = events(sub, k, None, False)
    assert len(offs) == 0, f"SPEC 4.3: offline events during the churn (first: {offs[:3]!r})"
    ons = events(sub, k, None, True)
    assert len(ons) == len(users), "online events (one per user, at the first connect)"
    assert redis_client.smembers(k.online) == {str(u) for u in users}, k.online
    await close_all(*conns.values())


# ---------------------------------------------------------------- guarantee 4


async def test_g4_sigkill_node_users_reaped_by_survivor(redis_client, cluster_node, subscriber,
                                                        key_prefix):
    k = Keys(key_prefix)
    sub = subscriber(k.channel)
    a, b = await start_nodes(cluster_node, ["g4-a", "g4-b"])
    watcher = await Client.connect(b, 900)
    await watcher.send({"type": "watch", "userIds": ["104", "105"]})
    await watcher.quiet(what="watch reply")
    only_a = [await Client.connect(a, 104), await Client.connect(a, 104)]
    both = [await Client.connect(a, 105), await Client.connect(b, 105)]
    only_b = await Client.connect(b, 106)
    for u in (104, 105, 106):
        await wait_online(redis_client, k, u)
    await wait_hash(redis_client, k, 104, {"g4-a": "2"})
    await wait_hash(redis_client, k, 105, {"g4-a": "1", "g4-b": "1"})
    await wait_events(sub, k, 104, True, 1, 1.0, "online event")
    mon = OnlineMonitor(redis_client, k, [105, 106]).start()
    # the watcher saw 104 and 105 come online
    seen = set()
    while seen != {("104", True), ("105", True)}:
        ev, _ = await recv_until(watcher, lambda m: m.get("type") == "presence_changed",
                                 timeout=2.0, what="presence_changed online")
        seen.add((ev.get("userId"), ev.get("online")))

    t_kill = time.monotonic()
    a.signal(signal.SIGKILL)
    bound = TTL + HEARTBEAT + 1.0
    deadline = t_kill + bound

    def reaped():
        return (not redis_client.sismember(k.online, "104")
                and not redis_client.exists(k.presence(104)))
    await apoll_until(reaped, bound, what=f"SPEC 4.4: user 104 out of {k.online} and "
                      f"{k.presence(104)} deleted {bound:.1f}s after SIGKILL")
    offs = await wait_events(sub, k, 104, False, 1,
                             max(0.0, deadline - time.monotonic()),
                             "SPEC 4.4: offline event for the killed node's user")
    await wait_hash(redis_client, k, 105, {"g4-b": "1"},
                    timeout=max(0.05, deadline - time.monotonic()),
                    what="the dead node's field of a user also on the survivor")
    ev, _ = await recv_until(watcher, lambda m: m.get("type") == "presence_changed",
                             timeout=1.0, what="presence_changed offline on the survivor")
    assert (ev.get("userId"), ev.get("online")) == ("104", False), "watcher event"
    await asyncio.sleep(DUP_WINDOW)
    await mon.stop()
    assert sorted({u for _, u in mon.absent}) == [], (
        "users with a connection on the survivor "
        "that left online")
    offs = events(sub, k, 104, False)
    assert len(offs) == 1, f"offline events for user 104: {offs!r}"
    assert events(sub, k, 105, False) + events(sub, k, 106, False) == [], (
        "offline events for users still connected to the survivor")
    assert redis_client.sismember(k.online, "105") and redis_client.sismember(k.online, "106"), (
        f"survivor's users in online: {redis_client.smembers(k.online)}")
    await watcher.quiet(what="watcher after the reaping")
    assert b.alive(), "survivor died"
    await close_all(watcher, *both, only_b, *only_a)


async def test_g4_two_survivors_one_offline_event_each(redis_client, cluster_node, subscriber,
                                                       key_prefix):
    # both survivors notice the dead node; each user still goes offline once
    k = Keys(key_prefix)
    users = [str(u) for u in range(150, 160)]
    sub = subscriber(k.channel)
    a, b, c = await start_nodes(cluster_node, ["g4t-a", "g4t-b", "g4t-c"])
    watchers = [await Client.connect(b, 903), await Client.connect(c, 904)]
    for w in watchers:
        await w.send({"type": "watch", "userIds": users})
        await w.quiet(what="watch reply")
    conns = [await Client.connect(a, u) for u in users]
    conns.append(await Client.connect(a, 160))  # reconnects to C after the kill
    for u in users + ["160"]:
        await wait_online(redis_client, k, u)
    for w in watchers:
        await collect_changed(w, len(users), 2.0, "online")
    mon = OnlineMonitor(redis_client, k, [160]).start()
    t_kill = time.monotonic()
    a.signal(signal.SIGKILL)
    conns.append(await Client.connect(c, 160))
    bound = TTL + HEARTBEAT + 1.0
    await apoll_until(lambda: not (redis_client.smembers(k.online) & set(users)), bound,
                      what=f"SPEC 4.4: the killed node's users out of {k.online} "
                           f"{bound:.1f}s after SIGKILL")
    await in_thread(sub.wait_for,
                    lambda _m: len(events(sub, k, None, False)) >= len(users),
                    max(0.0, t_kill + bound - time.monotonic()))
    for w, wh in zip(watchers, ("B", "C")):
        got = await collect_changed(w, len(users), 2.0, f"offline on {wh}")
        assert sorted((e["userId"], e["online"]) for e in got) == [(u, False) for u in users], (
            f"presence_changed on {wh}")
    await asyncio.sleep(DUP_WINDOW)
    offs = events(sub, k, None, False)
    assert sorted(e["userId"] for e in offs) == users, (
        "offline events: exactly one per user of the killed node")
    for w, wh in zip(watchers, ("B", "C")):
        await w.quiet(what=f"watcher on {wh} after the reaping")
    left = {x for x in redis_client.keys(k.p + "presence:*") if x.rsplit(":", 1)[1] in users}
    assert left == set(), (
        "presence hashes of the killed node's users left")
    # 160 had a connection elsewhere (C) by the time the dead node was noticed
    await mon.stop()
    assert mon.absent[:3] == [], "user 160, reconnected to a survivor, left online"
    assert redis_client.hgetall(k.presence(160)) == {"g4t-c": "1"}, (
        f"{k.presence(160)} after the reaping")
    assert events(sub, k, 160, False) == [], "offline events for user 160"
    await close_all(*watchers, *conns)


async def collect_changed(w, n, timeout, what):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        ev, _ = await recv_until(w, lambda m: m.get("type") == "presence_changed",
                                 timeout=max(0.01, deadline - time.monotonic()),
                                 what=f"presence_changed {what} ({len(got)} of {n})")
        got.append(ev)
    return got


# ---------------------------------------------------------------- guarantee 5


async def test_g5_restart_same_id_clears_previous_incarnation(redis_client, cluster_node,
                                                              subscriber, key_prefix):
    # node-ttl 10s: nobody can reap the dead incarnation within this test, so
    # whatever clears its entries is the new incarnation's start. "At start"
    # is read as: within 1 s of the new listening line.
    k = Keys(key_prefix)
    sub = subscriber(k.channel)
    b, = await start_nodes(cluster_node, ["g5-b"], ttl="10s")
    a = await in_thread(cluster_node, "g5-a", ttl="10s")
    await in_thread(wait_ready, a)
    cs = [await Client.connect(a, 107), await Client.connect(a, 107),
          await Client.connect(a, 108), await Client.connect(a, 109),
          await Client.connect(b, 109)]
    for u in (107, 108, 109):
        await wait_online(redis_client, k, u)
    await wait_hash(redis_client, k, 107, {"g5-a": "2"})
    await wait_hash(redis_client, k, 108, {"g5-a": "1"})
    await wait_hash(redis_client, k, 109, {"g5-a": "1", "g5-b": "1"})
    mon = OnlineMonitor(redis_client, k, [109]).start()
    await wait_events(sub, k, 108, True, 1, 1.0, "online event")
    a.signal(signal.SIGKILL)
    assert await in_thread(a.wait_exit, 5) == -signal.SIGKILL, "exit of the killed node"
    assert redis_client.sismember(k.online, "107") and redis_client.exists(k.presence(107)), (
        "test precondition: the dead incarnation's entries are still there")
    a2 = await in_thread(cluster_node, "g5-a", ttl="10s")
    t_line = a2.started_at

    def cleared():
        db = redis_client
        return (not db.sismember(k.online, "107") and not db.sismember(k.online, "108")
                and not db.exists(k.presence(107)) and not db.exists(k.presence(108)))
    await apoll_until(cleared, max(0.0, t_line + 1.0 - time.monotonic()),
                      what="SPEC 4.5: previous incarnation's users gone within 1 s of "
                           "the restarted node's listening line "
                           f"(online={redis_client.smembers(k.online)})")
    await wait_hash(redis_client, k, 109, {"g5-b": "1"},
                    timeout=max(0.05, t_line + 1.0 - time.monotonic()),
                    what="SPEC 4.5: the previous incarnation's field of a user also on "
                         "another node")
    await wait_events(sub, k, 107, False, 1, 1.0, "offline event for 107")
    await wait_events(sub, k, 108, False, 1, 1.0, "offline event for 108")
    assert redis_client.exists(k.node("g5-a")), (
        f"{k.node('g5-a')} (the new incarnation's "
        f"heartbeat) missing")
    # the new incarnation counts from zero
    c = await Client.connect(a2, 107)
    await wait_hash(redis_client, k, 107, {"g5-a": "1"}, what="count after the restart")
    await asyncio.sleep(DUP_WINDOW)
    assert len(events(sub, k, 107, False)) == 1, "offline events for 107"
    assert len(events(sub, k, 108, False)) == 1, "offline events for 108"
    await mon.stop()
    assert mon.absent[:3] == [], "user 109 (also on node B) left online"
    assert events(sub, k, 109, False) == [], "offline events for 109"
    await close_all(c, *cs)


# ---------------------------------------------------------------- guarantee 6


async def redis_outage(redis_server, cluster_node, key_prefix, keep_data):
    """redis_server persists its data when keep_data (an append-only file)."""
    k = Keys(key_prefix)
    db = redis_server.client
    a, b = await start_nodes(cluster_node, ["g6-a", "g6-b"])
    c111 = await Client.connect(a, 111)
    c112 = await Client.connect(a, 112)
    c114 = await Client.connect(a, 114)
    c113 = await Client.connect(b, 113)
    for u in (111, 112, 113, 114):
        await wait_online(db, k, u)
    await wait_hash(db, k, 114, {"g6-a": "1"})

    await in_thread(redis_server.stop)
    for n in (a, b):
        await apoll_until(
            lambda n=n: get_json(n, "/healthz").get("redis") == "down", 5.0,
            what=f"/healthz of {n.node} says redis down after redis-server stopped")
        h = await in_thread(get_json, n, "/healthz")
        assert (h.get("status"), h.get("presence"), h.get("node")) == ("ok", "redis", n.node), (
            "/healthz during the outage")
        r = await in_thread(http_get, n, "/readyz")
        assert r.status == 503, f"/readyz of {n.node} while Redis is down"
        assert await in_thread(metric, n, "hubnode_redis_up") == 0.0, (
            f"hubnode_redis_up of {n.node} while Redis is down")
        errs = await in_thread(metric, n, "hubnode_redis_errors_total")
        assert errs is not None and errs > 0, (
            f"hubnode_redis_errors_total of {n.node} during the outage: {errs!r}")

    # local delivery keeps working during the outage, on both nodes
    await c111.send_msg("112", {"k": "outage-a"}, ref="o1")
    m = await c112.expect("message")
    assert (m.get("from"), m.get("data")) == ("111", {"k": "outage-a"}), "local message"
    ack, _ = await recv_until(c111, lambda x: x.get("type") == "ack", 3.0, "ack")
    assert (ack.get("ref"), ack.get("id"), ack.get("online")) == ("o1", m.get("id"), True), (
        "ack during the outage")
    c115 = await Client.connect(b, 115)  # a connection opened during the outage
    await c113.send_msg("115", {"k": "outage-b"}, ref="o2")
    m = await c115.expect("message")
    assert (m.get("from"), m.get("data")) == ("113", {"k": "outage-b"}), (
        "local message on B")
    ack, _ = await recv_until(c113, lambda x: x.get("type") == "ack", 3.0, "ack")
    assert (ack.get("id"), ack.get("online")) == (m.get("id"), True), "ack on B"
    await c114.close()  # a user that goes offline during the outage
    await asyncio.sleep(TTL + 0.5)  # an outage longer than node-ttl

    if not keep_data:
        await in_thread(redis_server.wipe)
    await in_thread(redis_server.start)
    t_up = redis_server.started_at
    deadline = t_up + 5.0
    expected = {111: {"g6-a": "1"}, 112: {"g6-a": "1"},
                113: {"g6-b": "1"}, 115: {"g6-b": "1"}}
    state = {}

    def right():
        state["online"] = db.smembers(k.online)
        state["keys"] = set(db.keys(k.p + "presence:*"))
        state["hashes"] = {u: db.hgetall(k.presence(u)) for u in expected}
        state["nodes alive"] = [db.exists(k.node(n)) for n in ("g6-a", "g6-b")]
        return (state["online"] == {str(u) for u in expected}
                and state["keys"] == {k.presence(u) for u in expected}
                and state["hashes"] == expected
                and all(state["nodes alive"]))

    async def state_ok():
        while not right():
            if time.monotonic() > deadline:
                pytest.fail(f"SPEC 4.6: 5 s after Redis came back "
                            f"({'with' if keep_data else 'without'} its data) the presence "
                            f"keys are not right: {state!r}")
            await asyncio.sleep(0.05)

    async def health_ok():
        for n in (a, b):
            await apoll_until(
                lambda n=n: get_json(n, "/healthz").get("redis") == "up",
                max(0.0, deadline - time.monotonic()),
                what=f"/healthz of {n.node} says redis up")
            await apoll_until(lambda n=n: http_get(n, "/readyz").status == 200,
                              max(0.0, deadline - time.monotonic()),
                              what=f"/readyz of {n.node} 200")

    await asyncio.gather(state_ok(), health_ok(),
                         cross_node_works(c111, c113, deadline),
                         cross_node_works(c113, c111, deadline))
    for n in (a, b):
        assert await in_thread(metric, n, "hubnode_redis_up") == 1.0, (
            f"hubnode_redis_up of {n.node} after the outage")
    # and it stays right (a heartbeat key that expired during the outage
    # must not get the node reaped now)
    await asyncio.sleep(TTL + HEARTBEAT + 0.3)
    assert right(), f"SPEC 4.6: presence keys went wrong again: {state!r}"
    await exactly_once(c111, c113)
    assert a.alive() and b.alive(), "a node died"
    await close_all(c111, c112, c113, c115)


def http_get(n, path):
    return http(n, "GET", path)


async def cross_node_works(src, dst, deadline):
    """Send src -> dst's user every 100 ms until dst gets one (before the
    deadline). Retries may be lost (SPEC 5: at most once across failures)."""
    i = 0
    while True:
        i += 1
        await src.send_msg(dst.user, {"probe": i, "from": src.user})
        try:
            m = await dst.recv(0.1)
            if m.get("type") == "message" and m.get("from") == src.user:
                return
        except AssertionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"SPEC 4.6: no cross-node delivery {src.user} -> {dst.user} within 5 s "
                        f"after Redis came back ({i} tries)")


async def exactly_once(src, dst):
    """One fresh message src -> dst arrives exactly once (SPEC 5)."""
    tag = os.urandom(4).hex()
    await src.send_msg(dst.user, {"tag": tag}, ref="x1")
    got = 0
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        try:
            m = await dst.recv(max(0.01, t_end - time.monotonic()))
        except AssertionError:
            break
        if m.get("type") == "message" and m.get("data") == {"tag": tag}:
            got += 1
    assert got == 1, f"copies of one message {src.user} -> {dst.user} after the outage"


@pytest.mark.timeout(90)
@pytest.mark.redis_server(persist=True)
async def test_g6_redis_restart_with_data(redis_server, cluster_node, key_prefix):
    await redis_outage(redis_server, cluster_node, key_prefix, keep_data=True)


@pytest.mark.timeout(90)
async def test_g6_redis_restart_without_data(redis_server, cluster_node, key_prefix):
    await redis_outage(redis_server, cluster_node, key_prefix, keep_data=False)


# ---------------------------------------------------------------- guarantee 7


async def test_g7_sigterm_withdraws_before_exit(redis_client, cluster_node, subscriber,
                                                key_prefix):
    k = Keys(key_prefix)
    sub = subscriber(k.channel)
    a, b = await start_nodes(cluster_node, ["g7-a", "g7-b"])
    watcher = await Client.connect(b, 905)
    await watcher.send({"type": "watch", "userIds": ["116", "117"]})
    await watcher.quiet(what="watch reply")
    only_a = [await Client.connect(a, 116), await Client.connect(a, 116)]
    both = [await Client.connect(a, 117), await Client.connect(b, 117)]
    for u in (116, 117):
        await wait_online(redis_client, k, u)
    await wait_hash(redis_client, k, 116, {"g7-a": "2"})
    await wait_hash(redis_client, k, 117, {"g7-a": "1", "g7-b": "1"})
    assert redis_client.exists(k.node("g7-a")), f"{k.node('g7-a')} missing before the shutdown"

    def term():
        a.signal(signal.SIGTERM)
        return a.wait_exit(10)
    rc = await in_thread(term)
    # right after the exit, before anything else could have acted
    online = redis_client.smembers(k.online)
    node_key = redis_client.exists(k.node("g7-a"))
    h116 = redis_client.hgetall(k.presence(116))
    h117 = redis_client.hgetall(k.presence(117))
    assert rc == 0, "exit status after SIGTERM"
    assert not node_key, f"SPEC 4.7: {k.node('g7-a')} after the exit"
    assert "116" not in online, (
        f"SPEC 4.7: user 116 (only on the stopped node) still in "
        f"{k.online} after the exit: {online}")
    assert h116 == {}, f"SPEC 4.7: {k.presence(116)} after the exit"
    assert h117 == {"g7-b": "1"}, f"SPEC 4.7: {k.presence(117)} after the exit"
    assert "117" in online, f"user 117 (also on the other node) left {k.online}"
    await wait_events(sub, k, 116, False, 1, 1.0, "offline event for 116")
    got = []
    while len(got) < 3:  # 116 and 117 online, then 116 offline
        ev, _ = await recv_until(watcher, lambda m: m.get("type") == "presence_changed",
                                 timeout=2.0, what=f"presence_changed ({got!r} so far)")
        got.append((ev.get("userId"), ev.get("online")))
    assert sorted(got) == [("116", False), ("116", True), ("117", True)], (
        "presence_changed on the other node")
    await asyncio.sleep(DUP_WINDOW)
    assert len(events(sub, k, 116, False)) == 1, "offline events for 116"
    assert events(sub, k, 117, False) == [], "offline events for 117"
    await watcher.quiet(what="watcher after the shutdown")
    await close_all(watcher, *only_a, *both)


async def test_g3_g7_rolling_restart_reconnect_elsewhere_no_flap(redis_client, cluster_node,
                                                                 subscriber, key_prefix):
    """A deploy: the node is stopped with SIGTERM, its client is told 1001 and
    reconnects to another node at once. The user never goes offline (4.3) and
    the stopped node's entries are still gone when it exits (4.7)."""
    k = Keys(key_prefix)
    sub = subscriber(k.channel)
    a, b = await start_nodes(cluster_node, ["rr-a", "rr-b"])
    c = await Client.connect(a, 140)
    await wait_online(redis_client, k, 140)
    a.signal(signal.SIGTERM)
    await asyncio.wait_for(c.ws.wait_closed(), 3.0)
    assert c.ws.close_code == 1001, "close code from the stopping node"
    again = await Client.connect(b, 140)
    rc = await in_thread(lambda: a.wait_exit(10))
    assert rc == 0, "exit status after SIGTERM"
    assert not redis_client.exists(k.node("rr-a")), f"SPEC 4.7: {k.node('rr-a')} after the exit"
    assert redis_client.hgetall(k.presence(140)) == {"rr-b": "1"}, (
        f"{k.presence(140)} after the exit")
    assert "140" in redis_client.smembers(k.online), "SPEC 4.3: user 140 left the online set"
    await asyncio.sleep(DUP_WINDOW)
    assert events(sub, k, 140, False) == [], (
        "SPEC 4.3: offline events for a user that reconnected within the grace period")
    await close_all(again)


# ---------------------------------------------------------------- clients and API


async def test_presence_changed_reaches_watchers_on_other_node(cluster_node):
    a, b = await start_nodes(cluster_node, ["pw-a", "pw-b"])
    w = await Client.connect(b, 901)
    await w.send({"type": "watch", "userIds": ["130"]})
    await w.quiet(what="watch reply")
    u = await Client.connect(a, 130)
    ev = await w.expect("presence_changed", timeout=2.0)
    assert (ev.get("userId"), ev.get("online")) == ("130", True), "online on the other node"
    u2 = await Client.connect(b, 130)  # not a transition
    await u2.close()
    await asyncio.sleep(GRACE + 0.5)
    await w.quiet(what="a second connection and its close are no transition")
    t0 = time.monotonic()
    await u.close()
    ev = await w.expect("presence_changed", timeout=GRACE + 2.0)
    el = time.monotonic() - t0
    assert (ev.get("userId"), ev.get("online")) == ("130", False), "offline on the other node"
    assert el >= GRACE, f"offline event {el:.3f}s after the close, before the grace period"
    await asyncio.sleep(DUP_WINDOW)
    await w.quiet(what="after the offline event")
    # presence query on B agrees
    await w.send({"type": "presence", "userIds": ["130"]})
    p = await w.expect("presence")
    assert p.get("users") == {"130": False}, "presence answer"
    await close_all(w)


async def test_presence_query_sees_other_node(redis_client, cluster_node, key_prefix):
    k = Keys(key_prefix)
    a, b = await start_nodes(cluster_node, ["pq-a", "pq-b"])
    u = await Client.connect(a, 131)
    q = await Client.connect(b, 902)
    await wait_online(redis_client, k, 131)
    await q.send({"type": "presence", "userIds": ["131", "132"]})
    p = await q.expect("presence")
    assert p.get("users") == {"131": True, "132": False}, "presence on the other node"
    await close_all(u, q)


async def test_presence_api_counts_cluster_wide(redis_client, cluster_node, key_prefix):
    k = Keys(key_prefix)
    a, b = await start_nodes(cluster_node, ["pa-a", "pa-b"], f"--server.api-key={API_KEY}",
                             grace="1s")
    cs = [await Client.connect(a, 140), await Client.connect(a, 140),
          await Client.connect(b, 140)]
    await wait_hash(redis_client, k, 140, {"pa-a": "2", "pa-b": "1"})
    for n in (a, b):
        p = await presence_api(n, 140)
        assert p == {"userId": "140", "online": True, "connections": 3}, (
            f"presence API on {n.node}")
        p = await presence_api(n, 141)
        assert p == {"userId": "141", "online": False, "connections": 0}, (
            f"presence API on {n.node} for nobody")
    t0 = time.monotonic()
    await close_all(*cs)
    # the grace period (1s): online, 0 connections, on both nodes
    await wait_hash(redis_client, k, 140, {"pa-a": "0", "pa-b": "0"}, timeout=0.5,
                    what="both counts 0 in the grace period")
    assert time.monotonic() - t0 < 0.8, "test precondition: still in the grace period"
    for n in (a, b):
        p = await presence_api(n, 140)
        assert p == {"userId": "140", "online": True, "connections": 0}, (
            f"presence API on {n.node} during the grace period")
    await apoll_until(lambda: not redis_client.sismember(k.online, "140"), 2.5,
                      what="user 140 offline after the grace period")
    for n in (a, b):
        p = await presence_api(n, 140)
        assert p == {"userId": "140", "online": False, "connections": 0}, (
            f"presence API on {n.node} after the grace period")

