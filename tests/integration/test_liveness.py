"""Liveness: server pings, stale sweep, slow consumers, presence grace
(SPEC sections 1-3 timings, standalone)."""

import asyncio
import socket
import time

import pytest

from hubnode_testing import (Client, OP_CLOSE, OP_PING, OP_PONG, RawWS, close_code, get_json,
                             in_thread, metric, metrics, poll_metric, read_response,
                             upgrade_request, ws_path)

FASTPING = ("--hub.ping-interval=200ms", "--hub.idle-timeout=600ms",
            "--hub.sweep-interval=200ms")


def read_for(raw, seconds, answer_pings):
    """Read frames for `seconds`; returns (ping times, other frames, end) where
    end is None (still open), ('close', code) or ('eof', None)."""
    pings, others = [], []
    t_end = time.monotonic() + seconds
    while True:
        left = t_end - time.monotonic()
        if left <= 0:
            return pings, others, None
        try:
            fin, op, payload = raw.recv_frame(left)
        except TimeoutError:
            return pings, others, None
        except (EOFError, ConnectionResetError):
            return pings, others, ("eof", None)
        if op == OP_PING:
            pings.append(time.monotonic())
            if answer_pings:
                raw.send_frame(OP_PONG, payload)
        elif op == OP_CLOSE:
            return pings, others, ("close", close_code(payload))
        elif op != OP_PONG:
            others.append((op, payload))


async def test_server_pings_every_interval(start_node):
    n = start_node("--hub.ping-interval=200ms")

    def run():
        r = RawWS.connect(n, 1)
        pings, others, end = read_for(r, 1.5, answer_pings=True)
        r.close()
        return pings, others, end
    pings, others, end = await in_thread(run)
    assert end == None, "connection ended while answering pings"
    assert 4 <= len(pings) <= 12, f"{len(pings)} pings in 1.5 s at ping-interval 200ms"
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert min(gaps) >= 0.08, f"pings too close together: {gaps}"


async def test_pong_keeps_silent_client_alive(start_node):
    n = start_node(*FASTPING)

    def run():
        r = RawWS.connect(n, 1)
        pings, others, end = read_for(r, 2.5, answer_pings=True)
        r.send_json({"type": "ping", "ref": "still"})
        m = r.recv_json(3, answer_pings=True)
        r.close()
        return end, m
    end, m = await in_thread(run)
    assert end == None, "a client that answers pings (idle-timeout 600ms) was closed"
    assert (m.get("type"), m.get("ref")) == ("pong", "still"), "pong after 2.5 s"


async def test_data_frames_keep_client_alive(start_node):
    # never answers WebSocket pings, but sends a data frame every 150 ms
    n = start_node(*FASTPING)

    def run():
        r = RawWS.connect(n, 1)
        r.recv_json(3)
        t_end = time.monotonic() + 2.5
        k = 0
        while time.monotonic() < t_end:
            r.send_json({"type": "ping", "ref": f"k{k}"})
            k += 1
            pings, others, end = read_for(r, 0.15, answer_pings=False)
            if end is not None:
                return end
        return None
    end = await in_thread(run)
    assert end == None, "a client sending frames every 150 ms was closed as stale"


async def test_stale_client_swept_good_client_stays(start_node):
    n = start_node(*FASTPING)
    good = await Client.connect(n, 2)  # websockets answers pings
    await good.send({"type": "watch", "userIds": ["1"]})
    await good.quiet(what="watch")

    def run():
        r = RawWS.connect(n, 1)
        t0 = time.monotonic()
        pings, others, end = read_for(r, 5.0, answer_pings=False)
        el = time.monotonic() - t0
        r.close()
        return pings, end, el
    pings, end, el = await in_thread(run)
    assert end is not None, (
        "a client that never answers pings is still open after 5 s "
        "(idle-timeout 600ms, sweep 200ms)")
    if end[0] == "close":
        assert end[1] == 1001, "close code for a stale connection"
    assert el >= 0.5, f"stale client closed after {el:.2f}s, before idle-timeout 600ms"
    assert el <= 0.6 + 0.2 + 1.5, f"stale client closed only after {el:.2f}s"
    assert len(pings) >= 1, "the stale client never got a ping"
    ev = await good.expect("presence_changed")
    assert (ev.get("userId"), ev.get("online")) == ("1", True), "watcher: stale user online"
    ev = await good.expect("presence_changed", timeout=3)
    assert (ev.get("userId"), ev.get("online")) == ("1", False), "watcher: stale user offline"
    await good.quiet(what="well-behaved client after the sweep")
    await poll_metric(n, lambda v: v >= 1, "hubnode_connections_closed_total",
                      reason="stale")
    await poll_metric(n, lambda v: v >= 1, "hubnode_stale_closed_total")
    # the stale user is offline, the good one online
    deadline = time.monotonic() + 2
    while True:
        await good.send({"type": "presence", "userIds": ["1", "2"]})
        p = await good.expect("presence")
        if p.get("users") == {"1": False, "2": True} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert p.get("users") == {"1": False, "2": True}, "presence after the sweep (+ grace)"
    await good.close()


async def test_sweeps_counted(start_node):
    n = start_node("--hub.sweep-interval=200ms")
    v0 = await in_thread(metric, n, "hubnode_sweeps_total")
    assert v0 is not None, "no hubnode_sweeps_total"
    await asyncio.sleep(1.1)
    v1 = await in_thread(metric, n, "hubnode_sweeps_total")
    assert v1 - v0 >= 3, f"{v1 - v0} sweeps in 1.1 s at sweep-interval 200ms"
    assert v1 > 0, "hubnode_sweeps_total not > 0"


@pytest.mark.timeout(120)
async def test_slow_consumer_closed_rss_bounded(start_node):
    opts = ("--hub.send-queue-limit=65536", "--hub.rate-limit=100000",
            "--presence.grace-period=100ms")
    n = start_node(*opts)
    # the victim: reads its welcome, then never reads again
    def open_victim():
        r = RawWS.connect(n, 500, rcvbuf=4096)
        w = r.recv_json(3)
        assert w.get("type") == "welcome", "victim welcome"
        return r
    victim = await in_thread(open_victim)
    other = await Client.connect(n, 501)
    flooder = await Client.connect(n, 502)
    rss0 = await in_thread(n.rss_kb)
    rss_max = rss0
    payload = "x" * 8000
    sent = 0
    gone = False
    t0 = time.monotonic()
    # bounded: at most 3000 messages (24 MB) or 30 s
    while sent < 3000 and time.monotonic() - t0 < 30 and not gone:
        # 4 x 8 KB in flight: well under the 64 KB queue limit, so only a
        # connection that does not read can reach it
        batch = 4
        for k in range(batch):
            await flooder.send({"type": "send", "to": "500", "data": payload,
                                "ref": f"f{sent + k}"})
        acks = 0
        while acks < batch:
            m = await flooder.recv(10)
            assert m.get("type") == "ack", f"flooder got {m!r}"
            acks += 1
            if m.get("online") is False:
                gone = True
        sent += batch
        rss_max = max(rss_max, await in_thread(n.rss_kb))
    assert gone, (
        f"the victim (never reads) was not closed after {sent} messages of 8 KB "
        f"with send-queue-limit 65536")
    growth_mb = (rss_max - rss0) / 1024
    assert growth_mb < 200, f"RSS grew by {growth_mb:.0f} MB while flooding a slow consumer"
    await poll_metric(n, lambda v: v >= 1, "hubnode_connections_closed_total",
                      reason="slow_consumer")

    # what the victim's socket shows: a 1008 close frame or a plain drop
    def victim_end():
        try:
            deadline = time.monotonic() + 15
            frames = 0
            while time.monotonic() < deadline and frames < 10000:
                try:
                    fin, op, payload = victim.recv_frame(deadline - time.monotonic())
                except (EOFError, ConnectionResetError):
                    return ("eof", None)
                frames += 1
                if op == OP_CLOSE:
                    return ("close", close_code(payload))
            return None
        finally:
            victim.close()
    end = await in_thread(victim_end)
    assert end is not None, "victim's socket never ended"
    if end[0] == "close":
        assert end[1] == 1008, "close code for a slow consumer"

    # everyone else keeps working
    await flooder.send({"type": "send", "to": "501", "data": "hi", "ref": "h"})
    ack = await flooder.expect("ack")
    assert ack.get("online") == True, "other user online"
    m = await other.expect("message")
    assert (m.get("from"), m.get("data")) == ("502", "hi"), "other client gets the message"
    await flooder.quiet(what="flooder")
    again = await Client.connect(n, 500)
    await flooder.send({"type": "send", "to": "500", "data": "back", "ref": "b"})
    m = await again.expect("message")
    assert m.get("data") == "back", "victim's user reconnected and receives"
    rss_end = await in_thread(n.rss_kb)
    assert (rss_end - rss0) / 1024 < 200, f"RSS {rss_end} kB vs {rss0} kB at start"
    for c in (again, other, flooder):
        await c.close()


@pytest.mark.timeout(120)
async def test_slow_connection_does_not_hurt_same_users_fast_one(start_node):
    opts = ("--hub.send-queue-limit=65536", "--hub.rate-limit=100000")
    n = start_node(*opts)

    def open_victim():
        r = RawWS.connect(n, 600, rcvbuf=4096)
        r.recv_json(3)
        return r
    victim = await in_thread(open_victim)
    fast = await Client.connect(n, 600)
    flooder = await Client.connect(n, 601)
    payload = "y" * 8000
    sent = 0
    received = 0
    cut = False
    t0 = time.monotonic()

    async def drain_fast(upto):
        nonlocal received
        while received < upto:
            m = await fast.recv(10)
            assert m.get("type") == "message", "fast connection frame"
            assert m["data"]["seq"] == received, "order at the fast connection"
            received += 1
    while sent < 3000 and time.monotonic() - t0 < 30 and not cut:
        # 4 x 8 KB in flight: under the 64 KB queue limit for a reader
        for k in range(4):
            await flooder.send({"type": "send", "to": "600",
                                "data": {"seq": sent + k, "p": payload}})
        for k in range(4):
            m = await flooder.recv(10)
            assert (m.get("type"), m.get("online")) == ("ack", True), f"ack {m!r}"
        sent += 4
        await drain_fast(sent)
        if sent % 40 == 0:
            v = await in_thread(metric, n, "hubnode_connections_closed_total",
                                reason="slow_consumer")
            cut = bool(v and v >= 1)
    assert cut, f"the connection that never reads was not cut after {sent} messages"
    # the fast connection of the same user got every message, in order
    assert received == sent, "messages at the fast connection"
    await fast.quiet(what="fast connection")
    victim.close()
    for c in (fast, flooder):
        await c.close()


async def test_grace_reconnect_no_offline_event(start_node):
    n = start_node("--presence.grace-period=1s")
    r0 = await in_thread(metric, n, "hubnode_reconnects_total")
    assert r0 is not None, "no hubnode_reconnects_total"
    w = await Client.connect(n, 1)
    await w.send({"type": "watch", "userIds": ["9"]})
    await w.quiet(what="watch")
    u = await Client.connect(n, 9)
    ev = await w.expect("presence_changed")
    assert (ev.get("userId"), ev.get("online")) == ("9", True), "online event"
    await u.close()
    # The client's close returns before the node has unregistered the
    # connection; a connect before that overlaps rather than reconnects.
    await poll_metric(n, lambda v: v == 1, "hubnode_connections_active")
    u2 = await Client.connect(n, 9)  # within the grace period
    await asyncio.sleep(1.6)
    await w.quiet(what="reconnect within the grace period (no flapping)")
    await poll_metric(n, lambda v: v == r0 + 1, "hubnode_reconnects_total")
    await w.send({"type": "presence", "userIds": ["9"]})
    p = await w.expect("presence")
    assert p.get("users") == {"9": True}, "presence"
    t0 = time.monotonic()
    await u2.close()
    ev = await w.expect("presence_changed", timeout=4)
    el = time.monotonic() - t0
    assert (ev.get("userId"), ev.get("online")) == ("9", False), "offline event"
    assert el >= 0.9, f"offline after {el:.2f}s, grace period 1s"
    assert el <= 2.5, f"offline only after {el:.2f}s, grace period 1s"
    await w.close()


def open_handshake(n, user):
    """A reconnect stuck in its handshake: TCP open, the request head sent
    but for its last line. Returns (socket, the rest of the head)."""
    req = upgrade_request(ws_path(user), f"{n.host}:{n.port}")
    s = socket.create_connection((n.host, n.port), timeout=5)
    s.sendall(req[:-2])
    return s, req[-2:]


async def watched_user_closes(n, watcher_user, user):
    """A watcher of `user`, and `user` connected and closed again."""
    w = await Client.connect(n, watcher_user)
    await w.send({"type": "watch", "userIds": [str(user)]})
    await w.quiet(what="watch")
    u = await Client.connect(n, user)
    ev = await w.expect("presence_changed")
    assert (ev.get("userId"), ev.get("online")) == (str(user), True), "online event"
    await u.close()
    return w


async def test_grace_held_while_a_handshake_is_pending(start_node):
    # A storm of reconnects can keep a user's reconnect waiting in the
    # node's backlog past the grace period; while the node has handshakes it
    # has not finished, the grace is held open (at most 500 ms longer).
    n = start_node("--presence.grace-period=100ms")
    s, rest = await in_thread(open_handshake, n, 9)
    w = await watched_user_closes(n, 1, 9)
    await asyncio.sleep(0.35)  # the grace period is long over
    await w.quiet(what="grace ran out during a pending handshake")
    s.sendall(rest)  # the reconnect completes
    resp, left = await in_thread(read_response, s, 5.0)
    assert resp.status == 101, "the held reconnect is upgraded"
    ws = RawWS(s, left)
    assert (await in_thread(ws.recv_json)).get("type") == "welcome", "its first frame"
    await asyncio.sleep(0.7)  # past the longest hold
    await w.quiet(what="reconnect that was waiting in the handshake (no flapping)")
    s.close()
    ev = await w.expect("presence_changed", timeout=2)
    assert (ev.get("userId"), ev.get("online")) == ("9", False), "offline after the last close"
    await w.close()


async def test_grace_hold_is_bounded(start_node):
    # A handshake that never ends (a slowloris) holds a grace period only
    # max_hold (500 ms) longer: the user still goes offline.
    n = start_node("--presence.grace-period=100ms", "--server.handshake-timeout=10s")
    s, _ = await in_thread(open_handshake, n, 2)
    w = await watched_user_closes(n, 1, 9)
    t0 = time.monotonic()
    ev = await w.expect("presence_changed", timeout=3)
    el = time.monotonic() - t0
    assert (ev.get("userId"), ev.get("online")) == ("9", False), "offline event"
    assert el >= 0.55, f"offline after {el:.2f}s: the pending handshake held nothing"
    assert el <= 1.2, f"offline only after {el:.2f}s: grace 100 ms + hold 500 ms"
    s.close()
    await w.close()


async def test_reconnect_after_grace_is_new_online(start_node):
    n = start_node("--presence.grace-period=200ms")
    r0 = await in_thread(metric, n, "hubnode_reconnects_total")
    w = await Client.connect(n, 1)
    await w.send({"type": "watch", "userIds": ["9"]})
    await w.quiet()
    u = await Client.connect(n, 9)
    await w.expect("presence_changed")
    await u.close()
    ev = await w.expect("presence_changed", timeout=3)
    assert ev.get("online") == False, "offline after the grace period"
    u = await Client.connect(n, 9)
    ev = await w.expect("presence_changed")
    assert (ev.get("userId"), ev.get("online")) == ("9", True), "online again"
    r1 = await in_thread(metric, n, "hubnode_reconnects_total")
    assert r1 == r0, "a connect after the grace period is not a reconnect"
    await u.close()
    await w.close()


@pytest.mark.timeout(120)
async def test_connection_churn_no_leaks(start_node):
    n = start_node("--presence.grace-period=100ms", "--server.api-key=k")
    rss0 = await in_thread(n.rss_kb)
    watcher = await Client.connect(n, 1)
    for rnd in range(5):  # 5 x 100 connections: open all, close all
        cs = await asyncio.gather(*(Client.connect(n, 2000 + i) for i in range(100)))
        await asyncio.gather(*(c.close() for c in cs))
    # and 100 that vanish without a close frame
    def abrupt():
        socks = [RawWS.connect(n, 3000 + i) for i in range(100)]
        for r in socks:
            r.close()
    await in_thread(abrupt)

    async def settled():
        deadline = time.monotonic() + 5
        while True:
            ms = await in_thread(metrics, n)
            if (ms.get("hubnode_connections_active") == 1 and
                    ms.get("hubnode_users_online_local") == 1):
                return ms
            assert time.monotonic() < deadline, (
                f"after churn: active={ms.get('hubnode_connections_active')} "
                f"users_online_local={ms.get('hubnode_users_online_local')}, want 1/1")
            await asyncio.sleep(0.1)
    await settled()
    h = await in_thread(get_json, n, "/healthz")
    assert h.get("connections") == 1, "/healthz connections after churn"
    for uid in ("2000", "2099", "3000", "3099"):
        deadline = time.monotonic() + 3
        while True:
            p = await in_thread(lambda: get_json(n, f"/api/users/{uid}/presence",
                                                 headers={"Authorization": "Bearer k"}))
            if p == {"userId": uid, "online": False, "connections": 0}:
                break
            assert time.monotonic() < deadline, f"user {uid} after churn: {p!r}"
            await asyncio.sleep(0.1)
    rss1 = await in_thread(n.rss_kb)
    assert (rss1 - rss0) / 1024 < 100, (
        f"RSS grew {(rss1 - rss0) / 1024:.0f} MB over "
        "600 connections")
    await watcher.quiet(what="watcher")
    await watcher.close()

