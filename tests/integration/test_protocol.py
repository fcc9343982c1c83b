"""SPEC section 3 (WebSocket protocol), standalone mode, auth.mode=userid."""

import asyncio
import json
import struct
import time

import pytest

from hubnode_testing import (Bystander, Client, OP_CONT, OP_TEXT, RawWS, in_thread, now_ms,
                             poll_metric, recv_until)

FAST = "--hub.rate-limit=100000"


def check_message(m, sender, data, t0):
    assert m.get("type") == "message", f"frame type of {m!r}"
    assert m.get("from") == sender, "message from"
    assert "data" in m, f"message lacks data: {m!r}"
    assert m["data"] == data, "message data"
    assert isinstance(m.get("id"), str) and m["id"], f"message id not a non-empty string: {m!r}"
    ts = m.get("ts")
    assert isinstance(ts, int) and not isinstance(ts, bool), f"ts not an integer: {m!r}"
    assert t0 - 2000 <= ts <= now_ms() + 2000, f"ts {ts} is not unix ms now ({now_ms()})"


def check_error(m, code, ref=None):
    assert m.get("type") == "error", f"frame type of {m!r}"
    assert m.get("code") == code, f"error code of {m!r}"
    assert isinstance(m.get("message"), str) and m["message"], f"error lacks a message text: {m!r}"
    if ref is None:
        assert m.get("ref") is None, f"error carries a ref the request did not have: {m!r}"
    else:
        assert m.get("ref") == ref, "error ref"


async def still_works(n, c=None):
    """The node is up and (when given) this connection still answers."""
    if c is not None:
        await c.quiet(what="after the hostile input")
    f = await Client.connect(n, 999)
    await f.send({"type": "ping", "ref": "alive"})
    m = await f.expect("pong")
    assert m.get("ref") == "alive", "fresh client pong"
    await f.close()


# ---------------------------------------------------------------- welcome


async def test_welcome_first(node):
    a = await Client.connect(node, 42)
    b = await Client.connect(node, 42)
    for c in (a, b):
        w = c.welcome
        assert w.get("type") == "welcome", "type"
        assert w.get("userId") == "42", "welcome userId (a JSON string)"
        assert w.get("node") == node.node, "welcome node"
        cid = w.get("connectionId")
        assert cid not in (None, "", 0), f"connectionId missing: {w!r}"
    assert a.welcome["connectionId"] != b.welcome["connectionId"], (
        "two connections got the same connectionId")
    await a.close()
    await b.close()


async def test_client_close_1000_echoed(node):
    c = await Client.connect(node, 1)
    await c.ws.close(1000)
    rc = c.ws.close_rcvd
    assert rc is not None, "server did not answer the client's close frame"
    assert rc.code == 1000, "close code echoed by the server"


# ---------------------------------------------------------------- send


async def test_send_delivers_and_acks(node):
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 2)
    data = {"x": [1, {"y": None}, 2.5, -3, True], "s": "h\u00e9llo \u2603 \"q\" \\ \n",
            "e": {}, "l": [], "big": 12345678901234567}
    t0 = now_ms()
    await a.send({"type": "send", "to": "2", "data": data, "ref": "r1"})
    ack = await a.expect("ack")
    msg = await b.expect("message")
    check_message(msg, "1", data, t0)
    assert ack.get("ref") == "r1", "ack ref"
    assert ack.get("id") == msg["id"], "ack id vs message id"
    assert ack.get("online") == True, "ack online"
    await a.quiet(what="sender")
    await b.quiet(what="recipient second copy")
    await a.close()
    await b.close()


async def test_send_data_any_json_verbatim(node):
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 2)
    nested = "leaf"
    for i in range(25):  # 50 levels deep inside the envelope
        nested = {"k": [nested, i]}
    values = [None, True, False, 0, -1, 1.5, 1e100, "", "text", "\u0000\u001f\U0001F600",
              [], {}, [1, "2", [3, [4]]], {"a": {"b": {"c": None}}}, nested]
    for i, v in enumerate(values):
        await a.send({"type": "send", "to": "2", "data": v, "ref": f"v{i}"})
        ack = await a.expect("ack")
        assert ack.get("ref") == f"v{i}", "ack ref"
        m = await b.expect("message")
        assert "data" in m, f"message lacks data for {v!r}"
        assert m["data"] == v, f"data #{i}"
    await a.close()
    await b.close()


async def test_send_without_ref_acks(node):
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 2)
    await a.send({"type": "send", "to": "2", "data": 5})
    ack = await a.expect("ack")
    m = await b.expect("message")
    assert ack.get("id") == m.get("id"), "ack id vs message id"
    assert ack.get("online") == True, "online"
    await a.close()
    await b.close()


async def test_from_cannot_be_forged(node):
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 2)
    await a.send({"type": "send", "to": "2", "data": 1, "from": "999"})
    m = await b.expect("message")
    assert m.get("from") == "1", "from is the authenticated identity"
    await a.send({"type": "send", "to": "2", "data": 1, "from": "server"})
    m = await b.expect("message")
    assert m.get("from") == "1", "from is the authenticated identity"
    await a.close()
    await b.close()


async def test_send_to_self(node):
    a = await Client.connect(node, 3)
    a2 = await Client.connect(node, 3)
    t0 = now_ms()
    await a.send({"type": "send", "to": "3", "data": {"me": 1}, "ref": "s"})
    frames = [await a.recv(), await a.recv()]
    acks = [f for f in frames if f.get("type") == "ack"]
    msgs = [f for f in frames if f.get("type") == "message"]
    assert len(acks) == 1 and len(msgs) == 1, f"expected one ack and one message: {frames!r}"
    check_message(msgs[0], "3", {"me": 1}, t0)
    assert acks[0].get("id") == msgs[0]["id"], "ack id vs message id"
    assert acks[0].get("online") == True, "online"
    m2 = await a2.expect("message")
    assert m2.get("id") == msgs[0]["id"], "other connection of the sender's user"
    await a.close()
    await a2.close()


async def test_send_to_canonical_recipient(node):
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 7)
    await a.send({"type": "send", "to": "007", "data": "z", "ref": "c"})
    ack = await a.expect("ack")
    assert ack.get("online") == True, "to 007 = user 7 online"
    m = await b.expect("message")
    assert m.get("data") == "z", "delivered to user 7"
    await a.send({"type": "send", "to": "18446744073709551615", "data": 1, "ref": "max"})
    ack = await a.expect("ack")
    assert (ack.get("ref"), ack.get("online")) == ("max", False), "largest user id is valid"
    await a.send({"type": "send", "to": "0", "data": 1, "ref": "zero"})
    ack = await a.expect("ack")
    assert (ack.get("ref"), ack.get("online")) == ("zero", False), "user id 0 is valid"
    await a.close()
    await b.close()


async def test_three_connections_three_copies(node):
    a = await Client.connect(node, 1)
    bs = [await Client.connect(node, 2) for _ in range(3)]
    await a.send({"type": "send", "to": "2", "data": [1, 2], "ref": "m"})
    ack = await a.expect("ack")
    for i, b in enumerate(bs):
        m = await b.expect("message")
        assert m.get("id") == ack.get("id"), f"copy {i} id"
        assert m.get("data") == [1, 2], f"copy {i} data"
        await b.quiet(what=f"connection {i} got a second copy")
    await a.close()
    for b in bs:
        await b.close()


@pytest.mark.timeout(90)
async def test_five_hundred_in_order(start_node):
    n = start_node(FAST)
    a = await Client.connect(n, 1)
    bs = [await Client.connect(n, 2), await Client.connect(n, 2)]
    N = 500
    for i in range(N):
        await a.send({"type": "send", "to": "2", "data": {"seq": i}, "ref": f"s{i}"})
    acks = {}
    deadline = time.monotonic() + 30
    while len(acks) < N:
        assert time.monotonic() < deadline, f"only {len(acks)} acks of {N}"
        m = await a.recv(10)
        assert m.get("type") == "ack", f"frame to the sender: {m!r}"
        acks[m.get("ref")] = m
    for b in bs:
        seen = []
        for i in range(N):
            m = await b.recv(10)
            assert m.get("type") == "message", "frame type"
            seen.append(m)
        seqs = [m["data"]["seq"] for m in seen]
        assert seqs == list(range(N)), "order at the recipient"
        for i, m in enumerate(seen):
            assert m["id"] == acks[f"s{i}"].get("id"), f"id of message {i} vs its ack"
    ids = {m.get("id") for m in acks.values()}
    assert len(ids) == N, "distinct message ids"
    await a.close()
    for b in bs:
        await b.close()


async def test_ack_online_false_for_unknown_user(node):
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 2)
    await a.send({"type": "send", "to": "424242", "data": 1, "ref": "u"})
    ack = await a.expect("ack")
    assert ack.get("ref") == "u", "ref"
    assert ack.get("online") == False, "online for a user nobody is"
    assert isinstance(ack.get("id"), str) and ack["id"], f"ack id {ack!r}"
    await a.quiet(what="sender")
    await b.quiet(what="bystander")
    await a.close()
    await b.close()


async def test_ack_online_true_during_grace(start_node):
    n = start_node("--presence.grace-period=1s")
    a = await Client.connect(n, 1)
    b = await Client.connect(n, 2)
    await b.close()
    await a.send({"type": "send", "to": "2", "data": 1, "ref": "g"})
    ack = await a.expect("ack")
    assert ack.get("online") == True, "ack online in the grace period (SPEC 4)"
    await a.send({"type": "presence", "userIds": ["2"]})
    p = await a.expect("presence")
    assert p.get("users") == {"2": True}, "presence in the grace period"
    await asyncio.sleep(1.5)
    await a.send({"type": "send", "to": "2", "data": 1, "ref": "h"})
    ack = await a.expect("ack")
    assert ack.get("online") == False, "ack online after the grace period"
    await a.close()


async def test_registered_before_welcome(node):
    # SPEC 3 timing: a message sent to a user right after its welcome reaches it
    a = await Client.connect(node, 1)
    for i in range(20):
        uid = str(1000 + i)
        b = await Client.connect(node, uid)
        await a.send({"type": "send", "to": uid, "data": i, "ref": f"w{i}"})
        ack = await a.expect("ack")
        assert ack.get("online") == True, f"ack online for user {uid} right after its welcome"
        m = await b.expect("message")
        assert m.get("data") == i, "delivered right after the welcome"
        await b.send({"type": "presence", "userIds": [uid]})
        p = await b.expect("presence")
        assert p.get("users") == {uid: True}, "own presence right after the welcome"
        await b.close()
    await a.close()


async def test_welcome_first_under_load(start_node):
    # messages keep arriving for the user while its new connections open:
    # every connection still sees its welcome first
    n = start_node(FAST)
    a = await Client.connect(n, 1)
    stop = False

    async def pump():
        i = 0
        while not stop and i < 20000:
            await a.send({"type": "send", "to": "50", "data": i})
            i += 1
            if i % 20 == 0:
                await asyncio.sleep(0.001)

    async def drain():
        try:
            while not stop:
                await a.recv(5)
        except AssertionError:
            pass
    pt = asyncio.create_task(pump())
    dt = asyncio.create_task(drain())
    opened = []
    try:
        for k in range(30):
            c = await Client.connect(n, 50)  # asserts welcome is the first frame
            opened.append(c)
            if len(opened) > 5:
                await opened.pop(0).close()
    finally:
        stop = True
        await asyncio.wait_for(pt, 10)
        dt.cancel()
    for c in opened:
        await c.close()


async def test_rate_limit_is_per_connection(start_node):
    n = start_node("--hub.rate-limit=5")
    a1 = await Client.connect(n, 1)
    a2 = await Client.connect(n, 1)
    for c in (a1, a2):
        for i in range(10):  # each connection has its own burst of 10
            await c.send({"type": "send", "to": "2", "data": i, "ref": f"p{i}"})
    for c in (a1, a2):
        for i in range(10):
            m = await c.recv()
            assert (m.get("type"), m.get("ref")) == ("ack", f"p{i}"), (
                "second connection of the user has its own rate budget")
    await a1.close()
    await a2.close()


async def test_watcher_gone_then_transitions(start_node):
    n = start_node("--presence.grace-period=100ms")
    ws = [await Client.connect(n, 10 + i) for i in range(5)]
    for w in ws:
        await w.send({"type": "watch", "userIds": ["3"]})
        await w.quiet()
    for w in ws[:4]:
        await w.close()
    u = await Client.connect(n, 3)
    ev = await ws[4].expect("presence_changed")
    assert (ev.get("userId"), ev.get("online")) == ("3", True), "remaining watcher"
    await u.close()
    ev = await ws[4].expect("presence_changed")
    assert (ev.get("userId"), ev.get("online")) == ("3", False), "remaining watcher"
    await still_works(n)
    await ws[4].close()


# ---------------------------------------------------------------- presence / watch


async def test_presence_query(node):
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 2)
    await a.send({"type": "presence", "userIds": ["1", "2", "99"]})
    p = await a.expect("presence")
    assert p.get("users") == {"1": True, "2": True, "99": False}, "users"
    await a.send({"type": "presence", "userIds": []})
    p = await a.expect("presence")
    assert p.get("users") == {}, "empty query"
    ids = [str(i) for i in range(100)]
    await a.send({"type": "presence", "userIds": ids})
    p = await a.expect("presence")
    users = p.get("users") or {}
    assert len(users) == 100, "100 ids answered"
    assert users.get("1") == True, "user 1"
    assert users.get("50") == False, "user 50"
    await a.close()
    await b.close()


async def test_watch_online_offline(start_node):
    n = start_node("--presence.grace-period=500ms")
    w = await Client.connect(n, 1)
    w2 = await Client.connect(n, 5)
    for c in (w, w2):
        await c.send({"type": "watch", "userIds": ["3", "4"]})
        await c.quiet(what="watch reply")
    u = await Client.connect(n, 3)
    for c in (w, w2):
        ev = await c.expect("presence_changed")
        assert (ev.get("userId"), ev.get("online")) == ("3", True), "online event"
    u2 = await Client.connect(n, 3)  # not a transition
    await u2.close()
    await asyncio.sleep(0.8)
    await w.quiet(what="second connection / its close is not a transition")
    t0 = time.monotonic()
    await u.close()
    for c in (w, w2):
        ev = await c.expect("presence_changed", timeout=3)
        assert (ev.get("userId"), ev.get("online")) == ("3", False), "offline event"
    el = time.monotonic() - t0
    assert el >= 0.45, f"offline event after {el:.2f}s, before the 500ms grace period"
    assert el <= 1.5, f"offline event only after {el:.2f}s"
    v = await Client.connect(n, 4)
    ev = await w.expect("presence_changed")
    assert (ev.get("userId"), ev.get("online")) == ("4", True), "second watched user"
    await w.quiet()
    await v.close()
    await w.close()
    await w2.close()


async def test_unwatch_stops_events(start_node):
    n = start_node("--presence.grace-period=100ms")
    w = await Client.connect(n, 1)
    await w.send({"type": "watch", "userIds": ["3", "4"]})
    await w.quiet(what="watch")
    await w.send({"type": "unwatch", "userIds": ["3"]})
    await w.quiet(what="unwatch")
    u = await Client.connect(n, 3)
    await u.close()
    v = await Client.connect(n, 4)  # still watched
    ev = await w.expect("presence_changed")
    assert (ev.get("userId"), ev.get("online")) == ("4", True), (
        "event of the still-watched user")
    await asyncio.sleep(0.5)
    await w.quiet(what="events for an unwatched user")
    await v.close()
    await w.close()


async def test_ping_pong(node):
    a = await Client.connect(node, 1)
    await a.send({"type": "ping", "ref": "abc"})
    p = await a.expect("pong")
    assert p.get("ref") == "abc", "pong ref"
    await a.send({"type": "ping"})
    p = await a.expect("pong")
    assert p.get("ref") is None, f"pong for a ping without ref has a ref: {p!r}"
    await a.close()


# ---------------------------------------------------------------- errors


async def test_errors_bad_request_keep_connection_open(node):
    a = await Client.connect(node, 1)
    bad = ["{not json", "", "[1,2]", "42", '"str"', "null", "true",
           '{"to":"2","data":1}', '{"type":5}', '{"type":null}',
           '{"type":"send","to":"2"}',  # no data
           '{"type":"presence"}', '{"type":"presence","userIds":"1"}',
           '{"type":"watch","userIds":{"1":true}}', '{"type":"unwatch"}',
           '{"type":"ping"} x', '{"type":"ping"}{"type":"ping"}']
    for raw in bad:
        await a.send(raw)
        m = await a.recv()
        assert m.get("type") == "error", f"{raw!r} answered {m!r}"
        check_error(m, "bad_request")
    # surrounding white space is still one JSON object
    await a.send(' \n{"type":"ping","ref":"ws"} \t')
    m = await a.expect("pong")
    assert m.get("ref") == "ws", "pong for a frame with surrounding white space"
    await still_works(node, a)
    await a.close()


async def test_error_unknown_type(node):
    a = await Client.connect(node, 1)
    await a.send({"type": "dance", "ref": "d1"})
    check_error(await a.recv(), "unknown_type", "d1")
    await a.send({"type": "dance"})
    check_error(await a.recv(), "unknown_type")
    await a.send({"type": "SEND", "to": "2", "data": 1})
    check_error(await a.recv(), "unknown_type")
    await still_works(node, a)
    await a.close()


async def test_error_invalid_recipient(node):
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 2)
    for to in ("abc", "-1", "", "18446744073709551616", "2x", " 2", "1.0"):
        await a.send({"type": "send", "to": to, "data": 1, "ref": "ir"})
        check_error(await a.recv(), "invalid_recipient", "ir")
    for to in (2, None, ["2"], {"id": "2"}, True):
        await a.send({"type": "send", "to": to, "data": 1})
        check_error(await a.recv(), "invalid_recipient")
    await a.send({"type": "send", "data": 1, "ref": "nt"})
    check_error(await a.recv(), "invalid_recipient", "nt")
    await b.quiet(what="a bad send reached user 2")
    await still_works(node, a)
    await a.close()
    await b.close()


async def test_error_ref_limits(node):
    a = await Client.connect(node, 1)
    await a.send({"type": "send", "to": "1", "data": 1, "ref": "a" * 65})
    m = await a.recv()
    check_error(m, "bad_request", m.get("ref"))  # ref may or may not be echoed
    await a.send({"type": "send", "to": "1", "data": 1, "ref": 7})
    m = await a.recv()
    assert (m.get("type"), m.get("code")) == ("error", "bad_request"), f"numeric ref: {m!r}"
    await a.quiet(what="a bad send was delivered")
    ref64 = "b" * 64
    await a.send({"type": "send", "to": "2", "data": 1, "ref": ref64})
    ack = await a.expect("ack")
    assert ack.get("ref") == ref64, "64-char ref accepted"
    await still_works(node, a)
    await a.close()


async def test_error_user_id_lists(start_node):
    n = start_node()
    async with Bystander(n):
        a = await Client.connect(n, 1)
        ids101 = [str(i) for i in range(101)]
        for typ in ("presence", "watch", "unwatch"):
            await a.send({"type": typ, "userIds": ids101, "ref": f"{typ}101"})
            check_error(await a.recv(), "bad_request", f"{typ}101")
            for bad in (["1", "abc"], ["-1"], [5], [None], ["18446744073709551616"], [""]):
                await a.send({"type": typ, "userIds": bad, "ref": "bid"})
                check_error(await a.recv(), "bad_request", "bid")
        await a.send({"type": "watch", "userIds": [str(i) for i in range(100)]})
        await a.quiet(what="watch with 100 ids")
        await still_works(n, a)
        await a.close()


async def test_watch_list_bounded(start_node):
    n = start_node()
    async with Bystander(n):
        a = await Client.connect(n, 1)
        for k in range(10):  # 1000 users: the default presence.max-watched
            await a.send({"type": "watch", "userIds": [str(k * 100 + i) for i in range(100)],
                          "ref": f"w{k}"})
        await a.send({"type": "watch", "userIds": ["999", "5000"], "ref": "over"})
        m = await a.recv()
        check_error(m, "bad_request", "over")
        assert "1000" in m["message"], f"the error names the limit: {m['message']!r}"
        await a.send({"type": "watch", "userIds": ["0", "999"], "ref": "again"})
        await a.send({"type": "presence", "userIds": ["1"]})
        await a.expect("presence")  # answered after both watches: neither refused
        u = await Client.connect(n, 5000)  # refused as a whole: not watched
        v = await Client.connect(n, 999)
        ev = await a.expect("presence_changed")
        assert (ev.get("userId"), ev.get("online")) == ("999", True), "a watched user"
        await a.send({"type": "unwatch", "userIds": ["0"]})
        await a.send({"type": "watch", "userIds": ["5000"], "ref": "room"})
        await a.quiet(what="a watch after an unwatch made room")
        for c in (u, v, a):
            await c.close()


async def test_deeply_nested_json_is_bad_request(start_node):
    n = start_node()
    async with Bystander(n):
        a = await Client.connect(n, 1)
        for what, raw in [("60,000 nested arrays", "[" * 60000),
                          ("12,000 nested objects in data",
                           '{"type":"send","to":"1","data":' + '{"a":' * 12000),
                          ("65 levels", '{"type":"send","to":"1","data":' +
                           "[" * 64 + "]" * 64 + "}")]:
            await a.send(raw)
            m = await a.recv()
            assert m.get("type") == "error", f"{what} answered {m!r}"
            check_error(m, "bad_request")
        await still_works(n, a)
        await a.close()


async def test_error_carries_ref(node):
    a = await Client.connect(node, 1)
    cases = [({"type": "nope", "ref": "e1"}, "unknown_type"),
             ({"type": "send", "to": "x", "data": 1, "ref": "e2"}, "invalid_recipient"),
             ({"type": "send", "to": "2", "ref": "e3"}, "bad_request"),
             ({"type": "presence", "userIds": ["x"], "ref": "e4"}, "bad_request")]
    for req, code in cases:
        await a.send(req)
        check_error(await a.recv(), code, req["ref"])
    await still_works(node, a)
    await a.close()


# ---------------------------------------------------------------- frames and sizes


async def test_binary_frame_closes_1003(node):
    a = await Client.connect(node, 1)
    await a.ws.send(b'{"type":"ping"}')
    code = await a.wait_closed(3)
    assert code == 1003, "close code for a binary frame"
    await still_works(node)


async def test_oversized_frame_closes_1009(start_node):
    n = start_node("--server.max-message-size=1024")
    async with Bystander(n):
        a = await Client.connect(n, 1)
        big = json.dumps({"type": "send", "to": "1", "data": "x" * 2000})
        await a.send(big)
        code = await a.wait_closed(3)
        assert code == 1009, "close code for a 2 KB frame, limit 1024"
        await still_works(n)


async def test_frame_at_the_limit_accepted(start_node):
    n = start_node("--server.max-message-size=1024")
    a = await Client.connect(n, 1)
    head = '{"type":"send","to":"1","ref":"L","data":"'
    text = head + "x" * (1024 - len(head) - 2) + '"}'
    assert len(text.encode()) == 1024, "test frame size"
    await a.send(text)
    frames = [await a.recv(), await a.recv()]
    types = sorted(f.get("type") for f in frames)
    assert types == ["ack", "message"], "a 1024-byte frame (limit 1024) is served"
    await a.close()


async def test_fragmented_message_over_limit_1009(start_node):
    n = start_node("--server.max-message-size=1024")
    a = await Client.connect(n, 1)
    text = json.dumps({"type": "send", "to": "1", "data": "y" * 1400})
    parts = [text[i:i + 500] for i in range(0, len(text), 500)]
    assert all(len(p) <= 1024 for p in parts), "each fragment under the limit"
    await a.ws.send(parts)  # websockets sends an iterable as fragments
    code = await a.wait_closed(3)
    assert code == 1009, "close code for 1.4 KB in 500-byte fragments, limit 1024"
    await still_works(n)


async def test_fragmented_message_joined(start_node):
    n = start_node("--server.max-message-size=1024")
    a = await Client.connect(n, 1)
    b = await Client.connect(n, 2)
    text = json.dumps({"type": "send", "to": "2", "data": "z" * 600, "ref": "f"})
    parts = [text[i:i + 200] for i in range(0, len(text), 200)]
    await a.ws.send(parts)
    ack = await a.expect("ack")
    assert ack.get("ref") == "f", "ack ref"
    m = await b.expect("message")
    assert m.get("data") == "z" * 600, "joined data"
    await a.close()
    await b.close()


async def test_fragments_with_interleaved_ping(node):
    # RFC 6455 5.4: control frames may come between the fragments of a message
    def run():
        r = RawWS.connect(node, 1)
        r.recv_json(3)
        r.send_frame(OP_TEXT, b'{"type":"send","to":"1",', fin=False)
        r.send_frame(0x9, b"hello")  # WebSocket ping
        r.send_frame(OP_CONT, b'"data":"joined","ref":"j"}', fin=True)
        got, pong = [], False
        deadline = time.monotonic() + 3
        while len(got) < 2 and time.monotonic() < deadline:
            fin, op, payload = r.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == 0xA:
                pong = payload == b"hello"
            elif op == OP_TEXT:
                got.append(json.loads(payload))
            elif op == 0x8:
                pytest.fail(f"closed: {payload!r}")
        r.close()
        return got, pong
    got, pong = await in_thread(run)
    assert pong, "no pong for a ping between fragments"
    assert sorted(m.get("type") for m in got) == ["ack", "message"], f"frames {got!r}"
    msg = [m for m in got if m.get("type") == "message"][0]
    assert msg.get("data") == "joined", "joined message"


async def test_huge_announced_frame_closed_1009_quickly(start_node):
    # a header announcing 100 MB: closed 1009 without buffering it
    n = start_node("--server.max-message-size=65536")
    async with Bystander(n):
        rss0 = await in_thread(n.rss_kb)

        def run():
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, 100 * 1024 * 1024) + b"\0\0\0\0"
            try:
                r.sock.sendall(hdr + b"x" * 200000)
            except OSError:
                pass
            try:
                end = r.wait_end(3)
            except TimeoutError:
                end = None
            r.close()
            return end
        end = await in_thread(run)
        assert end is not None, "still open 3 s after announcing a 100 MB frame"
        if end[0] == "close":
            assert end[1] == 1009, "close code for an announced 100 MB frame"
        rss1 = await in_thread(n.rss_kb)
        assert (rss1 - rss0) / 1024 < 50, f"RSS grew {(rss1 - rss0) / 1024:.0f} MB"
        await still_works(n)


async def test_raw_unmasked_or_garbage_frames_dont_kill_node(start_node):
    # protocol violations: an unmasked client frame, a reserved opcode
    n = start_node()
    async with Bystander(n):
        def hostile():
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            r.send_frame(OP_TEXT, b'{"type":"ping"}', mask=False)
            try:
                r.wait_end(3)
            except TimeoutError:
                pytest.fail("unmasked client frame did not end the connection")
            r.close()
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            r.send_frame(3, b"x")  # reserved opcode
            try:
                r.wait_end(3)
            except TimeoutError:
                pytest.fail("reserved opcode did not end the connection")
            r.close()
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            r.send_frame(OP_CONT, b"x")  # continuation without a start
            try:
                r.wait_end(3)
            except TimeoutError:
                pytest.fail("stray continuation frame did not end the connection")
            r.close()
        await in_thread(hostile)
        await still_works(n)


async def test_invalid_utf8_text_frame_closes_1007(start_node):
    n = start_node()
    async with Bystander(n):
        def hostile(frames):
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            for fin, opcode, payload in frames:
                r.send_frame(opcode, payload, fin=fin)
            try:
                end = r.wait_end(3)
            except TimeoutError:
                end = None
            r.close()
            return end
        for what, frames in [
                ("invalid byte", [(True, OP_TEXT, b'{"type":"ping","ref":"\xff\xfe"}')]),
                ("UTF-16 surrogate", [(True, OP_TEXT, b'{"type":"ping","ref":"\xed\xa0\x80"}')]),
                ("truncated sequence across fragments",
                 [(False, OP_TEXT, b'{"type":"ping","ref":"\xe2\x82'),
                  (True, OP_CONT, b'"}')])]:
            end = await in_thread(hostile, frames)
            assert end == ("close", 1007), f"end of a connection that sent {what}"
        await still_works(n)


@pytest.mark.timeout(90)
async def test_concurrent_senders_exactly_once_in_order(start_node):
    n = start_node(FAST)
    K, N = 12, 40
    cs = [await Client.connect(n, 100 + i) for i in range(K)]

    async def blast(i):
        for j in range(N):
            to = str(100 + (i + 1 + j % (K - 1)) % K)
            await cs[i].send({"type": "send", "to": to,
                              "data": {"from": i, "seq": j}, "ref": f"{i}-{j}"})
    await asyncio.gather(*(blast(i) for i in range(K)))
    expected = {}
    for i in range(K):
        for j in range(N):
            to = (i + 1 + j % (K - 1)) % K
            expected.setdefault(to, []).append((i, j))

    async def collect(i):
        want_msgs = len(expected.get(i, []))
        msgs, acks = [], 0
        deadline = time.monotonic() + 30
        while len(msgs) < want_msgs or acks < N:
            assert time.monotonic() < deadline, (
                f"client {i}: {len(msgs)}/{want_msgs} messages, {acks}/{N} acks")
            m = await cs[i].recv(10)
            if m.get("type") == "message":
                msgs.append((m["data"]["from"], m["data"]["seq"]))
            elif m.get("type") == "ack":
                acks += 1
            else:
                pytest.fail(f"client {i} got {m!r}")
        return msgs
    got = await asyncio.gather(*(collect(i) for i in range(K)))
    for i in range(K):
        assert sorted(got[i]) == sorted(expected.get(i, [])), f"client {i}: exactly once"
        for sender in range(K):
            seqs = [s for f, s in got[i] if f == sender]
            assert seqs == sorted(seqs), f"client {i}: order of sender {sender}"
    for c in cs:
        await c.quiet(what="duplicates")
        await c.close()


# ---------------------------------------------------------------- rate limit


async def test_rate_limit_burst(start_node):
    n = start_node("--hub.rate-limit=5")
    a = await Client.connect(n, 1)
    b = await Client.connect(n, 2)
    N = 30
    for i in range(N):
        await a.send({"type": "send", "to": "2", "data": i, "ref": f"b{i}"})
    got = {}
    while len(got) < N:
        m = await a.recv(5)
        assert m.get("type") in ("ack", "error"), f"unexpected {m!r}"
        got[m.get("ref")] = m
    acked = [i for i in range(N) if got[f"b{i}"].get("type") == "ack"]
    limited = [i for i in range(N) if got[f"b{i}"].get("type") == "error"]
    for i in limited:
        check_error(got[f"b{i}"], "rate_limited", f"b{i}")
    assert acked[:10] == list(range(10)), "the burst of 2x5 = 10 is served"
    assert len(acked) <= 13, (
        f"{len(acked)} of {N} back-to-back sends served, limit 5/s "
        "burst 10")
    assert len(limited) >= N - 13, f"only {len(limited)} rate_limited"
    # only the served ones are delivered
    msgs = []
    for _ in acked:
        msgs.append(await b.expect("message"))
    assert [m["data"] for m in msgs] == acked, "delivered = served, in order"
    await b.quiet(what="a rate_limited message was delivered")
    await poll_metric(n, lambda v: v >= len(limited), "hubnode_messages_dropped_total",
                      reason="rate_limited")
    # tokens come back
    await asyncio.sleep(1.0)
    await a.send({"type": "send", "to": "2", "data": "after", "ref": "after"})
    ack = await a.expect("ack")
    assert ack.get("ref") == "after", "served again after a second"
    await a.close()
    await b.close()


async def test_rate_limited_client_that_slows_down_stays(start_node):
    n = start_node("--hub.rate-limit=5")
    a = await Client.connect(n, 1)
    burst = [f"x{i}" for i in range(30)]
    for ref in burst:
        await a.send({"type": "send", "to": "1", "data": ref, "ref": ref})
    await answers_to(a, burst)
    # the bucket refills from the node's last answer: 2.5 tokens by the
    # first slow send, 2.5 more before each next one
    await asyncio.sleep(0.5)
    slow = []
    t_end = time.monotonic() + 4.5
    while time.monotonic() < t_end:
        slow.append(f"slow{len(slow)}")
        await a.send({"type": "send", "to": "1", "data": "slow", "ref": slow[-1]})
        await asyncio.sleep(0.5)
    answers = await answers_to(a, slow)
    refused = [m for m in answers.values() if m.get("type") != "ack"]
    assert not refused, f"sends under the limit were refused: {refused[:3]!r}"
    await a.quiet(what="still open")
    await a.close()


async def answers_to(client, refs, timeout=5.0):
    """The ack or error answering each of refs, by ref; deliveries are skipped."""
    answers = {}
    deadline = time.monotonic() + timeout
    while len(answers) < len(refs):
        m, _ = await recv_until(client, lambda m: m.get("type") in ("ack", "error"),
                                timeout=max(0.1, deadline - time.monotonic()),
                                what=f"answer ({len(answers)} of {len(refs)} so far)")
        answers[m.get("ref")] = m
    assert sorted(answers) == sorted(refs), "answered refs"
    return answers


async def test_control_frames_not_rate_limited(start_node):
    n = start_node("--hub.rate-limit=5")
    a = await Client.connect(n, 1)
    waiters = [await a.ws.ping(f"p{i}".encode()) for i in range(50)]
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    for i in range(10):  # the whole burst of 2x5 is still there
        await a.send({"type": "send", "to": "1", "data": i, "ref": f"c{i}"})
    got = []
    while len(got) < 20:
        got.append(await a.recv())
    errs = [m for m in got if m.get("type") == "error"]
    assert not errs, f"WebSocket pings were counted by the rate limit: {errs[:3]!r}"
    await a.close()


async def test_sustained_flood_closed_1008(start_node):
    n = start_node("--hub.rate-limit=5")
    async with Bystander(n, period=0.25):
        a = await Client.connect(n, 1)
        first_limited = None
        ended_at = None
        counts = {"ack": 0, "error": 0}

        async def reader():
            nonlocal first_limited, ended_at
            try:
                async for raw in a.ws:
                    m = json.loads(raw)
                    t = m.get("type")
                    if t in counts:
                        counts[t] += 1
                    if t == "error" and m.get("code") == "rate_limited" and first_limited is None:
                        first_limited = time.monotonic()
            except Exception:
                pass
            ended_at = time.monotonic()

        rt = asyncio.create_task(reader())
        t0 = time.monotonic()
        i = 0
        try:
            # bounded: 100 msg/s (20x the limit) for at most 9 s
            while time.monotonic() - t0 < 9 and i < 900 and ended_at is None:
                await a.send({"type": "send", "to": "1", "data": i})
                i += 1
                await asyncio.sleep(0.01)
        except Exception:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(rt), 3)
        except asyncio.TimeoutError:
            pytest.fail(f"flooding client (100 msg/s, limit 5/s) still open after {i} sends / 9 s "
                        f"({counts})")
        closed_at = ended_at
        assert first_limited is not None, "never got rate_limited"
        rc = a.ws.close_rcvd
        assert rc is not None, "dropped without a close frame"
        assert rc.code == 1008, "close code for sustained flooding"
        el = closed_at - first_limited
        assert el >= 2.5, f"closed {el:.2f}s after the first rate_limited, before 3 s"
        assert el <= 5.0, f"closed only {el:.2f}s after the first rate_limited"
        await poll_metric(n, lambda v: v >= 1, "hubnode_connections_closed_total",
                          reason="policy")
        await still_works(n)

