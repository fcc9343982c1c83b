"""SPEC section 3 (WebSocket protocol), standalone mode, auth.mode=userid."""

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bystander, Client, Node, RawWS, OP_BIN, OP_TEXT, OP_CONT,  # noqa: E402
                     case, check, eq, fail, in_thread, main, metric, now_ms,
                     poll_metric, recv_until)

FAST = "--hub.rate-limit=100000"


def check_message(m, sender, data, t0):
    eq(m.get("type"), "message", f"frame type of {m!r}")
    eq(m.get("from"), sender, "message from")
    check("data" in m, f"message lacks data: {m!r}")
    eq(m["data"], data, "message data")
    check(isinstance(m.get("id"), str) and m["id"], f"message id not a non-empty string: {m!r}")
    ts = m.get("ts")
    check(isinstance(ts, int) and not isinstance(ts, bool), f"ts not an integer: {m!r}")
    check(t0 - 2000 <= ts <= now_ms() + 2000, f"ts {ts} is not unix ms now ({now_ms()})")


def check_error(m, code, ref=None):
    eq(m.get("type"), "error", f"frame type of {m!r}")
    eq(m.get("code"), code, f"error code of {m!r}")
    check(isinstance(m.get("message"), str) and m["message"],
          f"error lacks a message text: {m!r}")
    if ref is None:
        check(m.get("ref") is None, f"error carries a ref the request did not have: {m!r}")
    else:
        eq(m.get("ref"), ref, "error ref")


async def still_works(n, c=None):
    """The node is up and (when given) this connection still answers."""
    if c is not None:
        await c.quiet(what="after the hostile input")
    f = await Client.connect(n, 999)
    await f.send({"type": "ping", "ref": "alive"})
    m = await f.expect("pong")
    eq(m.get("ref"), "alive", "fresh client pong")
    await f.close()


# ---------------------------------------------------------------- welcome


@case
async def welcome_first():
    async with Node() as n:
        a = await Client.connect(n, 42)
        b = await Client.connect(n, 42)
        for c in (a, b):
            w = c.welcome
            eq(w.get("type"), "welcome", "type")
            eq(w.get("userId"), "42", "welcome userId (a JSON string)")
            eq(w.get("node"), n.node, "welcome node")
            cid = w.get("connectionId")
            check(cid not in (None, "", 0), f"connectionId missing: {w!r}")
        check(a.welcome["connectionId"] != b.welcome["connectionId"],
              "two connections got the same connectionId")
        await a.close()
        await b.close()


@case
async def client_close_1000_echoed():
    async with Node() as n:
        c = await Client.connect(n, 1)
        await c.ws.close(1000)
        rc = c.ws.close_rcvd
        check(rc is not None, "server did not answer the client's close frame")
        eq(rc.code, 1000, "close code echoed by the server")


# ---------------------------------------------------------------- send


@case
async def send_delivers_and_acks():
    async with Node() as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        data = {"x": [1, {"y": None}, 2.5, -3, True], "s": "h\u00e9llo \u2603 \"q\" \\ \n",
                "e": {}, "l": [], "big": 12345678901234567}
        t0 = now_ms()
        await a.send({"type": "send", "to": "2", "data": data, "ref": "r1"})
        ack = await a.expect("ack")
        msg = await b.expect("message")
        check_message(msg, "1", data, t0)
        eq(ack.get("ref"), "r1", "ack ref")
        eq(ack.get("id"), msg["id"], "ack id vs message id")
        eq(ack.get("online"), True, "ack online")
        await a.quiet(what="sender")
        await b.quiet(what="recipient second copy")
        await a.close()
        await b.close()


@case
async def send_data_any_json_verbatim():
    async with Node() as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        nested = "leaf"
        for i in range(25):  # 50 levels deep inside the envelope
            nested = {"k": [nested, i]}
        values = [None, True, False, 0, -1, 1.5, 1e100, "", "text", "\u0000\u001f\U0001F600",
                  [], {}, [1, "2", [3, [4]]], {"a": {"b": {"c": None}}}, nested]
        for i, v in enumerate(values):
            await a.send({"type": "send", "to": "2", "data": v, "ref": f"v{i}"})
            ack = await a.expect("ack")
            eq(ack.get("ref"), f"v{i}", "ack ref")
            m = await b.expect("message")
            check("data" in m, f"message lacks data for {v!r}")
            eq(m["data"], v, f"data #{i}")
        await a.close()
        await b.close()


@case
async def send_without_ref_acks():
    async with Node() as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        await a.send({"type": "send", "to": "2", "data": 5})
        ack = await a.expect("ack")
        m = await b.expect("message")
        eq(ack.get("id"), m.get("id"), "ack id vs message id")
        eq(ack.get("online"), True, "online")
        await a.close()
        await b.close()


@case
async def from_cannot_be_forged():
    async with Node() as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        await a.send({"type": "send", "to": "2", "data": 1, "from": "999"})
        m = await b.expect("message")
        eq(m.get("from"), "1", "from is the authenticated identity")
        await a.send({"type": "send", "to": "2", "data": 1, "from": "server"})
        m = await b.expect("message")
        eq(m.get("from"), "1", "from is the authenticated identity")
        await a.close()
        await b.close()


@case
async def send_to_self():
    async with Node() as n:
        a = await Client.connect(n, 3)
        a2 = await Client.connect(n, 3)
        t0 = now_ms()
        await a.send({"type": "send", "to": "3", "data": {"me": 1}, "ref": "s"})
        frames = [await a.recv(), await a.recv()]
        acks = [f for f in frames if f.get("type") == "ack"]
        msgs = [f for f in frames if f.get("type") == "message"]
        check(len(acks) == 1 and len(msgs) == 1, f"expected one ack and one message: {frames!r}")
        check_message(msgs[0], "3", {"me": 1}, t0)
        eq(acks[0].get("id"), msgs[0]["id"], "ack id vs message id")
        eq(acks[0].get("online"), True, "online")
        m2 = await a2.expect("message")
        eq(m2.get("id"), msgs[0]["id"], "other connection of the sender's user")
        await a.close()
        await a2.close()


@case
async def send_to_canonical_recipient():
    async with Node() as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 7)
        await a.send({"type": "send", "to": "007", "data": "z", "ref": "c"})
        ack = await a.expect("ack")
        eq(ack.get("online"), True, "to 007 = user 7 online")
        m = await b.expect("message")
        eq(m.get("data"), "z", "delivered to user 7")
        await a.send({"type": "send", "to": "18446744073709551615", "data": 1, "ref": "max"})
        ack = await a.expect("ack")
        eq((ack.get("ref"), ack.get("online")), ("max", False), "largest user id is valid")
        await a.send({"type": "send", "to": "0", "data": 1, "ref": "zero"})
        ack = await a.expect("ack")
        eq((ack.get("ref"), ack.get("online")), ("zero", False), "user id 0 is valid")
        await a.close()
        await b.close()


@case
async def three_connections_three_copies():
    async with Node() as n:
        a = await Client.connect(n, 1)
        bs = [await Client.connect(n, 2) for _ in range(3)]
        await a.send({"type": "send", "to": "2", "data": [1, 2], "ref": "m"})
        ack = await a.expect("ack")
        for i, b in enumerate(bs):
            m = await b.expect("message")
            eq(m.get("id"), ack.get("id"), f"copy {i} id")
            eq(m.get("data"), [1, 2], f"copy {i} data")
            await b.quiet(what=f"connection {i} got a second copy")
        await a.close()
        for b in bs:
            await b.close()


@case(timeout=90)
async def five_hundred_in_order():
    async with Node(FAST) as n:
        a = await Client.connect(n, 1)
        bs = [await Client.connect(n, 2), await Client.connect(n, 2)]
        N = 500
        for i in range(N):
            await a.send({"type": "send", "to": "2", "data": {"seq": i}, "ref": f"s{i}"})
        acks = {}
        deadline = time.monotonic() + 30
        while len(acks) < N:
            check(time.monotonic() < deadline, f"only {len(acks)} acks of {N}")
            m = await a.recv(10)
            eq(m.get("type"), "ack", f"frame to the sender: {m!r}")
            acks[m.get("ref")] = m
        for b in bs:
            seen = []
            for i in range(N):
                m = await b.recv(10)
                eq(m.get("type"), "message", "frame type")
                seen.append(m)
            seqs = [m["data"]["seq"] for m in seen]
            eq(seqs, list(range(N)), "order at the recipient")
            for i, m in enumerate(seen):
                eq(m["id"], acks[f"s{i}"].get("id"), f"id of message {i} vs its ack")
        ids = {m.get("id") for m in acks.values()}
        eq(len(ids), N, "distinct message ids")
        await a.close()
        for b in bs:
            await b.close()


@case
async def ack_online_false_for_unknown_user():
    async with Node() as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        await a.send({"type": "send", "to": "424242", "data": 1, "ref": "u"})
        ack = await a.expect("ack")
        eq(ack.get("ref"), "u", "ref")
        eq(ack.get("online"), False, "online for a user nobody is")
        check(isinstance(ack.get("id"), str) and ack["id"], f"ack id {ack!r}")
        await a.quiet(what="sender")
        await b.quiet(what="bystander")
        await a.close()
        await b.close()


@case
async def ack_online_true_during_grace():
    async with Node("--presence.grace-period=1s") as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        await b.close()
        await a.send({"type": "send", "to": "2", "data": 1, "ref": "g"})
        ack = await a.expect("ack")
        eq(ack.get("online"), True, "ack online in the grace period (SPEC 4)")
        await a.send({"type": "presence", "userIds": ["2"]})
        p = await a.expect("presence")
        eq(p.get("users"), {"2": True}, "presence in the grace period")
        await asyncio.sleep(1.5)
        await a.send({"type": "send", "to": "2", "data": 1, "ref": "h"})
        ack = await a.expect("ack")
        eq(ack.get("online"), False, "ack online after the grace period")
        await a.close()


@case
async def registered_before_welcome():
    # SPEC 3 timing: a message sent to a user right after its welcome reaches it
    async with Node() as n:
        a = await Client.connect(n, 1)
        for i in range(20):
            uid = str(1000 + i)
            b = await Client.connect(n, uid)
            await a.send({"type": "send", "to": uid, "data": i, "ref": f"w{i}"})
            ack = await a.expect("ack")
            eq(ack.get("online"), True, f"ack online for user {uid} right after its welcome")
            m = await b.expect("message")
            eq(m.get("data"), i, "delivered right after the welcome")
            await b.send({"type": "presence", "userIds": [uid]})
            p = await b.expect("presence")
            eq(p.get("users"), {uid: True}, "own presence right after the welcome")
            await b.close()
        await a.close()


@case
async def welcome_first_under_load():
    # messages keep arriving for the user while its new connections open:
    # every connection still sees its welcome first
    async with Node(FAST) as n:
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


@case
async def rate_limit_is_per_connection():
    async with Node("--hub.rate-limit=5") as n:
        a1 = await Client.connect(n, 1)
        a2 = await Client.connect(n, 1)
        for c in (a1, a2):
            for i in range(10):  # each connection has its own burst of 10
                await c.send({"type": "send", "to": "2", "data": i, "ref": f"p{i}"})
        for c in (a1, a2):
            for i in range(10):
                m = await c.recv()
                eq((m.get("type"), m.get("ref")), ("ack", f"p{i}"),
                   "second connection of the user has its own rate budget")
        await a1.close()
        await a2.close()


@case
async def watcher_gone_then_transitions():
    async with Node("--presence.grace-period=100ms") as n:
        ws = [await Client.connect(n, 10 + i) for i in range(5)]
        for w in ws:
            await w.send({"type": "watch", "userIds": ["3"]})
            await w.quiet()
        for w in ws[:4]:
            await w.close()
        u = await Client.connect(n, 3)
        ev = await ws[4].expect("presence_changed")
        eq((ev.get("userId"), ev.get("online")), ("3", True), "remaining watcher")
        await u.close()
        ev = await ws[4].expect("presence_changed")
        eq((ev.get("userId"), ev.get("online")), ("3", False), "remaining watcher")
        await still_works(n)
        await ws[4].close()


# ---------------------------------------------------------------- presence / watch


@case
async def presence_query():
    async with Node() as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        await a.send({"type": "presence", "userIds": ["1", "2", "99"]})
        p = await a.expect("presence")
        eq(p.get("users"), {"1": True, "2": True, "99": False}, "users")
        await a.send({"type": "presence", "userIds": []})
        p = await a.expect("presence")
        eq(p.get("users"), {}, "empty query")
        ids = [str(i) for i in range(100)]
        await a.send({"type": "presence", "userIds": ids})
        p = await a.expect("presence")
        users = p.get("users") or {}
        eq(len(users), 100, "100 ids answered")
        eq(users.get("1"), True, "user 1")
        eq(users.get("50"), False, "user 50")
        await a.close()
        await b.close()


@case
async def watch_online_offline():
    async with Node("--presence.grace-period=500ms") as n:
        w = await Client.connect(n, 1)
        w2 = await Client.connect(n, 5)
        for c in (w, w2):
            await c.send({"type": "watch", "userIds": ["3", "4"]})
            await c.quiet(what="watch reply")
        u = await Client.connect(n, 3)
        for c in (w, w2):
            ev = await c.expect("presence_changed")
            eq((ev.get("userId"), ev.get("online")), ("3", True), "online event")
        u2 = await Client.connect(n, 3)  # not a transition
        await u2.close()
        await asyncio.sleep(0.8)
        await w.quiet(what="second connection / its close is not a transition")
        t0 = time.monotonic()
        await u.close()
        for c in (w, w2):
            ev = await c.expect("presence_changed", timeout=3)
            eq((ev.get("userId"), ev.get("online")), ("3", False), "offline event")
        el = time.monotonic() - t0
        check(el >= 0.45, f"offline event after {el:.2f}s, before the 500ms grace period")
        check(el <= 1.5, f"offline event only after {el:.2f}s")
        v = await Client.connect(n, 4)
        ev = await w.expect("presence_changed")
        eq((ev.get("userId"), ev.get("online")), ("4", True), "second watched user")
        await w.quiet()
        await v.close()
        await w.close()
        await w2.close()


@case
async def unwatch_stops_events():
    async with Node("--presence.grace-period=100ms") as n:
        w = await Client.connect(n, 1)
        await w.send({"type": "watch", "userIds": ["3", "4"]})
        await w.quiet(what="watch")
        await w.send({"type": "unwatch", "userIds": ["3"]})
        await w.quiet(what="unwatch")
        u = await Client.connect(n, 3)
        await u.close()
        v = await Client.connect(n, 4)  # still watched
        ev = await w.expect("presence_changed")
        eq((ev.get("userId"), ev.get("online")), ("4", True), "event of the still-watched user")
        await asyncio.sleep(0.5)
        await w.quiet(what="events for an unwatched user")
        await v.close()
        await w.close()


@case
async def ping_pong():
    async with Node() as n:
        a = await Client.connect(n, 1)
        await a.send({"type": "ping", "ref": "abc"})
        p = await a.expect("pong")
        eq(p.get("ref"), "abc", "pong ref")
        await a.send({"type": "ping"})
        p = await a.expect("pong")
        check(p.get("ref") is None, f"pong for a ping without ref has a ref: {p!r}")
        await a.close()


# ---------------------------------------------------------------- errors


@case
async def errors_bad_request_keep_connection_open():
    async with Node() as n:
        a = await Client.connect(n, 1)
        bad = ["{not json", "", "[1,2]", "42", '"str"', "null", "true",
               '{"to":"2","data":1}', '{"type":5}', '{"type":null}',
               '{"type":"send","to":"2"}',  # no data
               '{"type":"presence"}', '{"type":"presence","userIds":"1"}',
               '{"type":"watch","userIds":{"1":true}}', '{"type":"unwatch"}',
               '{"type":"ping"} x', '{"type":"ping"}{"type":"ping"}']
        for raw in bad:
            await a.send(raw)
            m = await a.recv()
            check(m.get("type") == "error", f"{raw!r} answered {m!r}")
            check_error(m, "bad_request")
        # surrounding white space is still one JSON object
        await a.send(' \n{"type":"ping","ref":"ws"} \t')
        m = await a.expect("pong")
        eq(m.get("ref"), "ws", "pong for a frame with surrounding white space")
        await still_works(n, a)
        await a.close()


@case
async def error_unknown_type():
    async with Node() as n:
        a = await Client.connect(n, 1)
        await a.send({"type": "dance", "ref": "d1"})
        check_error(await a.recv(), "unknown_type", "d1")
        await a.send({"type": "dance"})
        check_error(await a.recv(), "unknown_type")
        await a.send({"type": "SEND", "to": "2", "data": 1})
        check_error(await a.recv(), "unknown_type")
        await still_works(n, a)
        await a.close()


@case
async def error_invalid_recipient():
    async with Node() as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        for to in ("abc", "-1", "", "18446744073709551616", "2x", " 2", "1.0"):
            await a.send({"type": "send", "to": to, "data": 1, "ref": "ir"})
            check_error(await a.recv(), "invalid_recipient", "ir")
        for to in (2, None, ["2"], {"id": "2"}, True):
            await a.send({"type": "send", "to": to, "data": 1})
            check_error(await a.recv(), "invalid_recipient")
        await a.send({"type": "send", "data": 1, "ref": "nt"})
        check_error(await a.recv(), "invalid_recipient", "nt")
        await b.quiet(what="a bad send reached user 2")
        await still_works(n, a)
        await a.close()
        await b.close()


@case
async def error_ref_limits():
    async with Node() as n:
        a = await Client.connect(n, 1)
        await a.send({"type": "send", "to": "1", "data": 1, "ref": "a" * 65})
        m = await a.recv()
        check_error(m, "bad_request", m.get("ref"))  # ref may or may not be echoed
        await a.send({"type": "send", "to": "1", "data": 1, "ref": 7})
        m = await a.recv()
        eq((m.get("type"), m.get("code")), ("error", "bad_request"), f"numeric ref: {m!r}")
        await a.quiet(what="a bad send was delivered")
        ref64 = "b" * 64
        await a.send({"type": "send", "to": "2", "data": 1, "ref": ref64})
        ack = await a.expect("ack")
        eq(ack.get("ref"), ref64, "64-char ref accepted")
        await still_works(n, a)
        await a.close()


@case
async def error_user_id_lists():
    async with Node() as n, Bystander(n):
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


@case
async def watch_list_bounded():
    async with Node() as n, Bystander(n):
        a = await Client.connect(n, 1)
        for k in range(10):  # 1000 users: the default presence.max-watched
            await a.send({"type": "watch", "userIds": [str(k * 100 + i) for i in range(100)],
                          "ref": f"w{k}"})
        await a.send({"type": "watch", "userIds": ["999", "5000"], "ref": "over"})
        m = await a.recv()
        check_error(m, "bad_request", "over")
        check("1000" in m["message"], f"the error names the limit: {m['message']!r}")
        await a.send({"type": "watch", "userIds": ["0", "999"], "ref": "again"})
        await a.send({"type": "presence", "userIds": ["1"]})
        await a.expect("presence")  # answered after both watches: neither refused
        u = await Client.connect(n, 5000)  # refused as a whole: not watched
        v = await Client.connect(n, 999)
        ev = await a.expect("presence_changed")
        eq((ev.get("userId"), ev.get("online")), ("999", True), "a watched user")
        await a.send({"type": "unwatch", "userIds": ["0"]})
        await a.send({"type": "watch", "userIds": ["5000"], "ref": "room"})
        await a.quiet(what="a watch after an unwatch made room")
        for c in (u, v, a):
            await c.close()


@case
async def deeply_nested_json_is_bad_request():
    async with Node() as n, Bystander(n):
        a = await Client.connect(n, 1)
        for what, raw in [("60,000 nested arrays", "[" * 60000),
                          ("12,000 nested objects in data",
                           '{"type":"send","to":"1","data":' + '{"a":' * 12000),
                          ("65 levels", '{"type":"send","to":"1","data":' +
                           "[" * 64 + "]" * 64 + "}")]:
            await a.send(raw)
            m = await a.recv()
            check(m.get("type") == "error", f"{what} answered {m!r}")
            check_error(m, "bad_request")
        await still_works(n, a)
        await a.close()


@case
async def error_carries_ref():
    async with Node() as n:
        a = await Client.connect(n, 1)
        cases = [({"type": "nope", "ref": "e1"}, "unknown_type"),
                 ({"type": "send", "to": "x", "data": 1, "ref": "e2"}, "invalid_recipient"),
                 ({"type": "send", "to": "2", "ref": "e3"}, "bad_request"),
                 ({"type": "presence", "userIds": ["x"], "ref": "e4"}, "bad_request")]
        for req, code in cases:
            await a.send(req)
            check_error(await a.recv(), code, req["ref"])
        await still_works(n, a)
        await a.close()


# ---------------------------------------------------------------- frames and sizes


@case
async def binary_frame_closes_1003():
    async with Node() as n:
        a = await Client.connect(n, 1)
        await a.ws.send(b'{"type":"ping"}')
        code = await a.wait_closed(3)
        eq(code, 1003, "close code for a binary frame")
        await still_works(n)


@case
async def oversized_frame_closes_1009():
    async with Node("--server.max-message-size=1024") as n, Bystander(n):
        a = await Client.connect(n, 1)
        big = json.dumps({"type": "send", "to": "1", "data": "x" * 2000})
        await a.send(big)
        code = await a.wait_closed(3)
        eq(code, 1009, "close code for a 2 KB frame, limit 1024")
        await still_works(n)


@case
async def frame_at_the_limit_accepted():
    async with Node("--server.max-message-size=1024") as n:
        a = await Client.connect(n, 1)
        head = '{"type":"send","to":"1","ref":"L","data":"'
        text = head + "x" * (1024 - len(head) - 2) + '"}'
        eq(len(text.encode()), 1024, "test frame size")
        await a.send(text)
        frames = [await a.recv(), await a.recv()]
        types = sorted(f.get("type") for f in frames)
        eq(types, ["ack", "message"], "a 1024-byte frame (limit 1024) is served")
        await a.close()


@case
async def fragmented_message_over_limit_1009():
    async with Node("--server.max-message-size=1024") as n:
        a = await Client.connect(n, 1)
        text = json.dumps({"type": "send", "to": "1", "data": "y" * 1400})
        parts = [text[i:i + 500] for i in range(0, len(text), 500)]
        check(all(len(p) <= 1024 for p in parts), "each fragment under the limit")
        await a.ws.send(parts)  # websockets sends an iterable as fragments
        code = await a.wait_closed(3)
        eq(code, 1009, "close code for 1.4 KB in 500-byte fragments, limit 1024")
        await still_works(n)


@case
async def fragmented_message_joined():
    async with Node("--server.max-message-size=1024") as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        text = json.dumps({"type": "send", "to": "2", "data": "z" * 600, "ref": "f"})
        parts = [text[i:i + 200] for i in range(0, len(text), 200)]
        await a.ws.send(parts)
        ack = await a.expect("ack")
        eq(ack.get("ref"), "f", "ack ref")
        m = await b.expect("message")
        eq(m.get("data"), "z" * 600, "joined data")
        await a.close()
        await b.close()


@case
async def fragments_with_interleaved_ping():
    # RFC 6455 5.4: control frames may come between the fragments of a message
    async with Node() as n:
        def run():
            r = RawWS.connect(n, 1)
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
                    fail(f"closed: {payload!r}")
            r.close()
            return got, pong
        got, pong = await in_thread(run)
        check(pong, "no pong for a ping between fragments")
        eq(sorted(m.get("type") for m in got), ["ack", "message"], f"frames {got!r}")
        msg = [m for m in got if m.get("type") == "message"][0]
        eq(msg.get("data"), "joined", "joined message")


@case
async def huge_announced_frame_closed_1009_quickly():
    # a header announcing 100 MB: closed 1009 without buffering it
    async with Node("--server.max-message-size=65536") as n, Bystander(n):
        rss0 = await in_thread(n.rss_kb)

        def run():
            import struct as st
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            hdr = st.pack("!BBQ", 0x81, 0x80 | 127, 100 * 1024 * 1024) + b"\0\0\0\0"
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
        check(end is not None, "still open 3 s after announcing a 100 MB frame")
        if end[0] == "close":
            eq(end[1], 1009, "close code for an announced 100 MB frame")
        rss1 = await in_thread(n.rss_kb)
        check((rss1 - rss0) / 1024 < 50, f"RSS grew {(rss1 - rss0) / 1024:.0f} MB")
        await still_works(n)


@case
async def raw_unmasked_or_garbage_frames_dont_kill_node():
    # protocol violations: an unmasked client frame, a reserved opcode
    async with Node() as n, Bystander(n):
        def hostile():
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            r.send_frame(OP_TEXT, b'{"type":"ping"}', mask=False)
            try:
                r.wait_end(3)
            except TimeoutError:
                fail("unmasked client frame did not end the connection")
            r.close()
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            r.send_frame(3, b"x")  # reserved opcode
            try:
                r.wait_end(3)
            except TimeoutError:
                fail("reserved opcode did not end the connection")
            r.close()
            r = RawWS.connect(n, 1)
            r.recv_json(3)
            r.send_frame(OP_CONT, b"x")  # continuation without a start
            try:
                r.wait_end(3)
            except TimeoutError:
                fail("stray continuation frame did not end the connection")
            r.close()
        await in_thread(hostile)
        await still_works(n)


@case
async def invalid_utf8_text_frame_closes_1007():
    async with Node() as n, Bystander(n):
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
            eq(end, ("close", 1007), f"end of a connection that sent {what}")
        await still_works(n)


@case(timeout=90)
async def concurrent_senders_exactly_once_in_order():
    async with Node(FAST) as n:
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
                check(time.monotonic() < deadline,
                      f"client {i}: {len(msgs)}/{want_msgs} messages, {acks}/{N} acks")
                m = await cs[i].recv(10)
                if m.get("type") == "message":
                    msgs.append((m["data"]["from"], m["data"]["seq"]))
                elif m.get("type") == "ack":
                    acks += 1
                else:
                    fail(f"client {i} got {m!r}")
            return msgs
        got = await asyncio.gather(*(collect(i) for i in range(K)))
        for i in range(K):
            eq(sorted(got[i]), sorted(expected.get(i, [])), f"client {i}: exactly once")
            for sender in range(K):
                seqs = [s for f, s in got[i] if f == sender]
                eq(seqs, sorted(seqs), f"client {i}: order of sender {sender}")
        for c in cs:
            await c.quiet(what="duplicates")
            await c.close()


# ---------------------------------------------------------------- rate limit


@case
async def rate_limit_burst():
    async with Node("--hub.rate-limit=5") as n:
        a = await Client.connect(n, 1)
        b = await Client.connect(n, 2)
        N = 30
        for i in range(N):
            await a.send({"type": "send", "to": "2", "data": i, "ref": f"b{i}"})
        got = {}
        while len(got) < N:
            m = await a.recv(5)
            check(m.get("type") in ("ack", "error"), f"unexpected {m!r}")
            got[m.get("ref")] = m
        acked = [i for i in range(N) if got[f"b{i}"].get("type") == "ack"]
        limited = [i for i in range(N) if got[f"b{i}"].get("type") == "error"]
        for i in limited:
            check_error(got[f"b{i}"], "rate_limited", f"b{i}")
        eq(acked[:10], list(range(10)), "the burst of 2x5 = 10 is served")
        check(len(acked) <= 13, f"{len(acked)} of {N} back-to-back sends served, limit 5/s "
              "burst 10")
        check(len(limited) >= N - 13, f"only {len(limited)} rate_limited")
        # only the served ones are delivered
        msgs = []
        for _ in acked:
            msgs.append(await b.expect("message"))
        eq([m["data"] for m in msgs], acked, "delivered = served, in order")
        await b.quiet(what="a rate_limited message was delivered")
        await poll_metric(n, lambda v: v >= len(limited), "hubnode_messages_dropped_total",
                          reason="rate_limited")
        # tokens come back
        await asyncio.sleep(1.0)
        await a.send({"type": "send", "to": "2", "data": "after", "ref": "after"})
        ack = await a.expect("ack")
        eq(ack.get("ref"), "after", "served again after a second")
        await a.close()
        await b.close()


@case
async def rate_limited_client_that_slows_down_stays():
    async with Node("--hub.rate-limit=5") as n:
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
        check(not refused, f"sends under the limit were refused: {refused[:3]!r}")
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
    eq(sorted(answers), sorted(refs), "answered refs")
    return answers


@case
async def control_frames_not_rate_limited():
    async with Node("--hub.rate-limit=5") as n:
        a = await Client.connect(n, 1)
        waiters = [await a.ws.ping(f"p{i}".encode()) for i in range(50)]
        await asyncio.wait_for(asyncio.gather(*waiters), 5)
        for i in range(10):  # the whole burst of 2x5 is still there
            await a.send({"type": "send", "to": "1", "data": i, "ref": f"c{i}"})
        got = []
        while len(got) < 20:
            got.append(await a.recv())
        errs = [m for m in got if m.get("type") == "error"]
        check(not errs, f"WebSocket pings were counted by the rate limit: {errs[:3]!r}")
        await a.close()


@case(timeout=60)
async def sustained_flood_closed_1008():
    async with Node("--hub.rate-limit=5") as n, Bystander(n, period=0.25):
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
            fail(f"flooding client (100 msg/s, limit 5/s) still open after {i} sends / 9 s "
                 f"({counts})")
        closed_at = ended_at
        check(first_limited is not None, "never got rate_limited")
        rc = a.ws.close_rcvd
        check(rc is not None, "dropped without a close frame")
        eq(rc.code, 1008, "close code for sustained flooding")
        el = closed_at - first_limited
        check(el >= 2.5, f"closed {el:.2f}s after the first rate_limited, before 3 s")
        check(el <= 5.0, f"closed only {el:.2f}s after the first rate_limited")
        await poll_metric(n, lambda v: v >= 1, "hubnode_connections_closed_total",
                          reason="policy")
        await still_works(n)


if __name__ == "__main__":
    main()
