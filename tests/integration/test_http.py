"""SPEC section 2 (HTTP), standalone mode with auth.mode=userid."""

import asyncio
import os
import socket
import time

import pytest

from hubnode_testing import (Bystander, Client, RawWS, assert_error, get_json, http, in_thread,
                             metrics, now_ms, poll_metric, read_response, upgrade)

KEY = "s3cret-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}

METRIC_NAMES = [
    "hubnode_connections_active", "hubnode_connections_opened_total",
    "hubnode_connections_closed_total", "hubnode_handshakes_rejected_total",
    "hubnode_reconnects_total", "hubnode_users_online_local",
    "hubnode_messages_received_total", "hubnode_messages_delivered_total",
    "hubnode_messages_remote_total", "hubnode_messages_dropped_total",
    "hubnode_send_queue_bytes_max", "hubnode_sweeps_total", "hubnode_stale_closed_total",
    "hubnode_presence_transitions_total", "hubnode_redis_up",
    "hubnode_redis_errors_total", "hubnode_actors_running",
]
METRIC_LABELS = {
    "hubnode_connections_closed_total":
        ("reason", ["client", "stale", "slow_consumer", "policy", "shutdown", "error"]),
    "hubnode_handshakes_rejected_total":
        ("reason", ["validation", "unauthorized", "forbidden_origin", "over_capacity",
                    "too_many_connections", "timeout"]),
    "hubnode_messages_dropped_total":
        ("reason", ["rate_limited", "slow_consumer", "redis_down"]),
    "hubnode_presence_transitions_total": ("state", ["online", "offline"]),
}

REQUIRED = {"error": "validation", "field": "userId",
            "message": "userId parameter is required"}
INVALID = {"error": "validation", "field": "userId",
           "message": "userId must be a valid number"}


async def poll_json(n, path, pred, timeout=3.0, headers=None):
    deadline = time.monotonic() + timeout
    while True:
        j = await in_thread(get_json, n, path, headers=headers)
        if pred(j):
            return j
        if time.monotonic() > deadline:
            pytest.fail(f"GET {path} never satisfied the condition in {timeout}s; last {j!r}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- health / metrics


async def test_healthz_fields_and_connection_count(node):
    h = await in_thread(get_json, node, "/healthz")
    for k, v in {"status": "ok", "node": node.node, "presence": "memory",
                 "redis": "off", "connections": 0}.items():
        assert h.get(k) == v, f"/healthz {k}"
    assert type(h.get("connections")) is int, f"connections not an integer: {h!r}"
    a = await Client.connect(node, 1)
    b = await Client.connect(node, 1)
    # a raw client: its close() ends the TCP connection without a close frame
    raw = await in_thread(RawWS.connect, node, 2)
    h = await poll_json(node, "/healthz", lambda j: j.get("connections") == 3)
    await a.close()
    await b.close()
    raw.close()
    await poll_json(node, "/healthz", lambda j: j.get("connections") == 0)


async def test_readyz_200(node):
    r = await in_thread(http, node, "GET", "/readyz")
    assert r.status == 200, "/readyz standalone"


async def test_metrics_text_format_has_every_name(node):
    r = await in_thread(http, node, "GET", "/metrics")
    assert r.status == 200, "/metrics status"
    ct = r.headers.get("content-type", "")
    assert ct.startswith("text/plain"), (
        f"/metrics Content-Type {ct!r}, expected "
        "Prometheus text (text/plain; version=0.0.4)")
    text = r.body.decode()
    sample_names = {line.split("{")[0].split()[0] for line in text.splitlines()
                    if line and not line.startswith("#")}
    missing = [m for m in METRIC_NAMES if m not in sample_names]
    assert not missing, f"/metrics lacks samples for {missing}"
    for m in METRIC_NAMES:
        want = "counter" if m.endswith("_total") else "gauge"
        assert f"# TYPE {m} {want}" in text, f"/metrics lacks '# TYPE {m} {want}'"


async def test_metrics_every_label_value_present(node):
    ms = await in_thread(metrics, node)
    missing = []
    for name, (label, values) in METRIC_LABELS.items():
        for v in values:
            if f'{name}{{{label}="{v}"}}' not in ms:
                missing.append(f'{name}{{{label}="{v}"}}')
    assert not missing, f"/metrics lacks series {missing}"


async def test_metrics_counters_move(start_node):
    n = start_node("--presence.grace-period=100ms")
    m0 = await in_thread(metrics, n)
    a = await Client.connect(n, 1)
    b = await Client.connect(n, 2)
    await a.send_msg("2", "hi", ref="x")
    await a.expect("ack")
    await b.expect("message")
    m1 = await in_thread(metrics, n)

    def d(name, **lb):
        key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in lb.items()) + "}"
                      if lb else "")
        return m1.get(key, 0) - m0.get(key, 0)
    assert m1.get("hubnode_connections_active") == 2.0, "hubnode_connections_active"
    assert d("hubnode_connections_opened_total") == 2.0, "opened_total delta"
    assert m1.get("hubnode_users_online_local") == 2.0, "hubnode_users_online_local"
    assert d("hubnode_messages_received_total") >= 1, "messages_received_total did not move"
    assert d("hubnode_messages_delivered_total") >= 1, "messages_delivered_total did not move"
    assert d("hubnode_presence_transitions_total", state="online") == 2.0, (
        "presence_transitions_total{state=online} delta")
    assert (m1.get("hubnode_actors_running") or 0) > 0, "hubnode_actors_running not > 0"
    await b.close()
    await poll_metric(n, lambda v: v >= 1, "hubnode_connections_closed_total",
                      reason="client")
    await poll_metric(n, lambda v: v >= 1, "hubnode_presence_transitions_total",
                      state="offline")
    await poll_metric(n, lambda v: v == 1, "hubnode_connections_active")
    await in_thread(upgrade, n, "abc")
    await poll_metric(n, lambda v: v >= 1, "hubnode_handshakes_rejected_total",
                      reason="validation")
    await a.close()


# ---------------------------------------------------------------- routing


async def test_ws_without_upgrade_426(node):
    for path in ("/ws", "/ws?userId=1"):
        r = await in_thread(http, node, "GET", path)
        assert_error(r, 426, "upgrade_required", f"GET {path} without upgrade")


async def test_unknown_path_404(node):
    for method, path in (("GET", "/"), ("GET", "/nope"), ("GET", "/healthzz"),
                         ("POST", "/nope"), ("GET", "/api"), ("GET", "/wss")):
        r = await in_thread(http, node, method, path)
        assert_error(r, 404, "not_found", f"{method} {path}")


async def test_wrong_method_405(node):
    for method, path in (("POST", "/healthz"), ("DELETE", "/readyz"),
                         ("PUT", "/metrics"), ("POST", "/ws")):
        r = await in_thread(http, node, method, path, body=b"{}" if method != "DELETE" else None)
        assert_error(r, 405, "method_not_allowed", f"{method} {path}")


async def test_api_disabled_without_key_404(node):
    for hdrs in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
        r = await in_thread(http, node, "POST", "/api/users/1/messages", headers=hdrs,
                        body={"data": 1})
        assert_error(r, 404, "not_found", f"POST messages, api-key empty, {hdrs}")
        r = await in_thread(http, node, "GET", "/api/users/1/presence", headers=hdrs)
        assert_error(r, 404, "not_found", f"GET presence, api-key empty, {hdrs}")


async def test_api_unauthorized_401(start_node):
    n = start_node(f"--server.api-key={KEY}")
    bad = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
           {"Authorization": "Bearer"}, {"Authorization": f"Bearer {KEY}x"},
           {"Authorization": KEY}]
    for hdrs in bad:
        r = await in_thread(http, n, "POST", "/api/users/1/messages", headers=hdrs,
                        body={"data": 1})
        assert_error(r, 401, "unauthorized", f"POST messages with {hdrs}")
        r = await in_thread(http, n, "GET", "/api/users/1/presence", headers=hdrs)
        assert_error(r, 401, "unauthorized", f"GET presence with {hdrs}")
    # auth is checked before the id is validated
    r = await in_thread(http, n, "GET", "/api/users/abc/presence")
    assert_error(r, 401, "unauthorized", "GET presence bad id, no auth")


async def test_api_wrong_method_and_unknown_path(start_node):
    n = start_node(f"--server.api-key={KEY}")
    r = await in_thread(http, n, "GET", "/api/users/1/messages", headers=AUTH)
    assert_error(r, 405, "method_not_allowed", "GET messages")
    r = await in_thread(http, n, "POST", "/api/users/1/presence", headers=AUTH, body={"data": 1})
    assert_error(r, 405, "method_not_allowed", "POST presence")
    r = await in_thread(http, n, "DELETE", "/api/users/1/presence", headers=AUTH)
    assert_error(r, 405, "method_not_allowed", "DELETE presence")
    for path in ("/api/users/1/other", "/api/nope", "/api/users/1"):
        r = await in_thread(http, n, "GET", path, headers=AUTH)
        assert_error(r, 404, "not_found", f"GET {path}")


async def test_api_bad_id_400_validation(start_node):
    n = start_node(f"--server.api-key={KEY}")
    for bad in ("abc", "-1", "18446744073709551616", "1x", "1.5", "%20"):
        r = await in_thread(http, n, "POST", f"/api/users/{bad}/messages", headers=AUTH,
                        body={"data": 1})
        assert_error(r, 400, "validation", f"POST /api/users/{bad}/messages")
        r = await in_thread(http, n, "GET", f"/api/users/{bad}/presence", headers=AUTH)
        assert_error(r, 400, "validation", f"GET /api/users/{bad}/presence")
    j = await in_thread(get_json, n, "/api/users/18446744073709551615/presence", headers=AUTH)
    assert j.get("userId") == "18446744073709551615", "max uint64 id"


async def test_api_bad_body_400(start_node):
    n = start_node(f"--server.api-key={KEY}")
    for body in (b"", b"nope", b"[1]", b"5", b'"s"', b"null", b"{}",
                 b'{"date":1}', b'{"data":1'):
        r = await in_thread(http, n, "POST", "/api/users/1/messages", headers=AUTH, body=body)
        assert_error(r, 400, "bad_request", f"body {body!r}")


async def test_api_body_too_large_413(start_node):
    n = start_node(f"--server.api-key={KEY}", "--server.max-message-size=1024")
    async with Bystander(n):
        big = ('{"data":"' + "x" * 2000 + '"}').encode()
        r = await in_thread(http, n, "POST", "/api/users/1/messages", headers=AUTH, body=big)
        assert_error(r, 413, "too_large", "2 KB body, limit 1024")
        # the same without Content-Length (chunked)
        def chunked():
            with socket.create_connection((n.host, n.port), timeout=5) as s:
                s.sendall((f"POST /api/users/1/messages HTTP/1.1\r\nHost: x\r\n"
                           f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
                           f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode())
                try:
                    for i in range(0, len(big), 500):
                        part = big[i:i + 500]
                        s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    s.sendall(b"0\r\n\r\n")
                except OSError:
                    pass  # the server may answer and close early
                return read_response(s, 5)[0]
        r = await in_thread(chunked)
        assert_error(r, 413, "too_large", "2 KB chunked body, limit 1024")
        ok = ('{"data":"' + "x" * 1000 + '"}').encode()
        assert len(ok) <= 1024, "test body"
        r = await in_thread(http, n, "POST", "/api/users/1/messages", headers=AUTH, body=ok)
        assert r.status == 202, f"body of {len(ok)} bytes under the limit: {r.body!r}"


async def test_api_post_delivers_to_every_connection(start_node):
    n = start_node(f"--server.api-key={KEY}")
    u5a = await Client.connect(n, 5)
    u5b = await Client.connect(n, 5)
    u6 = await Client.connect(n, 6)
    data = {"a": [1, 2, {"b": "c"}], "s": "h\u00e9\u2603", "n": None, "t": True}
    t0 = now_ms()
    r = await in_thread(http, n, "POST", "/api/users/5/messages", headers=AUTH,
                        body={"data": data})
    assert r.status == 202, f"POST status (body {r.body!r})"
    ct = r.headers.get("content-type", "")
    assert ct.startswith("application/json"), f"202 Content-Type {ct!r}"
    j = r.json()
    assert isinstance(j.get("id"), str) and j["id"], f"202 id not a non-empty string: {j!r}"
    assert j.get("online") == True, "202 online"
    for c in (u5a, u5b):
        m = await c.expect("message")
        assert m.get("from") == "server", "from"
        assert m.get("id") == j["id"], "message id vs 202 id"
        assert m.get("data") == data, "data"
        assert isinstance(m.get("ts"), int) and t0 - 2000 <= m["ts"] <= now_ms() + 2000, (
            f"ts not unix ms now: {m.get('ts')!r}")
        await c.quiet(what="second copy")
    await u6.quiet(what="user 6 got user 5's message")
    r2 = await in_thread(http, n, "POST", "/api/users/5/messages", headers=AUTH, body={"data": 2})
    j2 = r2.json()
    assert j2.get("id") != j["id"], "two POSTs got the same message id"
    for c in (u5a, u5b, u6):
        await c.close()


async def test_api_post_data_null_and_scalar(start_node):
    n = start_node(f"--server.api-key={KEY}")
    c = await Client.connect(n, 8)
    for data in (None, 0, "s", [], {}):
        r = await in_thread(http, n, "POST", "/api/users/8/messages", headers=AUTH,
                        body={"data": data})
        assert r.status == 202, f"data {data!r}: {r.body!r}"
        m = await c.expect("message")
        assert "data" in m, f"message lacks data: {m!r}"
        assert m["data"] == data, "data"
    await c.close()


async def test_api_post_data_nested_as_deep_as_over_websocket(start_node):
    n = start_node(f"--server.api-key={KEY}")
    c = await Client.connect(n, 8)
    nested = "leaf"
    for i in range(25):  # 50 levels deep inside the body
        nested = {"k": [nested, i]}
    r = await in_thread(http, n, "POST", "/api/users/8/messages", headers=AUTH,
                    body={"data": nested})
    assert r.status == 202, f"50 levels: {r.body!r}"
    assert (await c.expect("message"))["data"] == nested, "data"
    too_deep = b'{"data":' + b"[" * 64 + b"]" * 64 + b"}"
    r = await in_thread(http, n, "POST", "/api/users/8/messages", headers=AUTH, body=too_deep)
    assert_error(r, 400, "bad_request", "65 levels")
    await c.close()


async def test_api_post_offline_user(start_node):
    n = start_node(f"--server.api-key={KEY}")
    other = await Client.connect(n, 1)
    r = await in_thread(http, n, "POST", "/api/users/77/messages", headers=AUTH, body={"data": 1})
    assert r.status == 202, f"POST to offline user: {r.body!r}"
    j = r.json()
    assert j.get("online") == False, "online for a user nobody is"
    assert isinstance(j.get("id"), str) and j["id"], f"id: {j!r}"
    await other.quiet(what="message to user 77 reached user 1")
    await other.close()


async def test_api_ids_canonicalised(start_node):
    n = start_node(f"--server.api-key={KEY}")
    c = await Client.connect(n, 7)
    r = await in_thread(http, n, "POST", "/api/users/007/messages", headers=AUTH,
                        body={"data": "z"})
    assert r.status == 202, f"POST /api/users/007/messages: {r.body!r}"
    assert r.json().get("online") == True, "online for 007 = 7"
    m = await c.expect("message")
    assert m.get("data") == "z", "data"
    j = await in_thread(get_json, n, "/api/users/007/presence", headers=AUTH)
    assert j == {"userId": "7", "online": True, "connections": 1}, "presence of 007"
    await c.close()


async def test_api_presence(start_node):
    n = start_node(f"--server.api-key={KEY}", "--presence.grace-period=1s")
    j = await in_thread(get_json, n, "/api/users/5/presence", headers=AUTH)
    assert j == {"userId": "5", "online": False, "connections": 0}, "nobody"
    a = await Client.connect(n, 5)
    b = await Client.connect(n, 5)
    j = await in_thread(get_json, n, "/api/users/5/presence", headers=AUTH)
    assert j == {"userId": "5", "online": True, "connections": 2}, "two connections"
    await b.close()
    await poll_json(n, "/api/users/5/presence",
                    lambda j: j.get("connections") == 1, headers=AUTH)
    t0 = time.monotonic()
    await a.close()
    # in the grace period: online, 0 connections
    j = await poll_json(n, "/api/users/5/presence",
                        lambda j: j.get("connections") == 0, headers=AUTH, timeout=0.8)
    assert time.monotonic() - t0 < 0.9, "test too slow to observe the grace period"
    assert j == {"userId": "5", "online": True, "connections": 0}, "in the grace period"
    j = await poll_json(n, "/api/users/5/presence",
                        lambda j: j.get("online") is False, headers=AUTH, timeout=3)
    el = time.monotonic() - t0
    assert el >= 0.9, f"offline after {el:.2f}s, before the 1s grace period"
    assert j == {"userId": "5", "online": False, "connections": 0}, "after the grace period"


async def test_upgrade_unknown_path_404(node):
    for path in ("/nope?userId=1", "/ws/extra?userId=1", "/?userId=1"):
        r, s, _ = await in_thread(lambda: upgrade(node, path=path))
        if s:
            s.close()
        assert_error(r, 404, "not_found", f"upgrade to {path}")


async def test_upgrade_header_variants_accepted(node):
    # what browsers really send: Firefox "Connection: keep-alive, Upgrade",
    # any letter case in header names and the Upgrade token
    variants = [
        {"Connection": "keep-alive, Upgrade"},
        {"Upgrade": "WebSocket"},
        {"Connection": "upgrade"},
    ]
    for v in variants:
        r, s, left = await in_thread(lambda: upgrade(node, 4, headers=v))
        assert r.status == 101, f"upgrade with {v}: {r.body[:200]!r}"
        ws = RawWS(s, left)
        m = await in_thread(ws.recv_json, 3)
        assert m.get("type") == "welcome", f"welcome with {v}"
        ws.close()
    raw = (b"GET /ws?userId=4 HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n"
           b"connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"sec-websocket-version: 13\r\n\r\n")

    def lower():
        with socket.create_connection((node.host, node.port), timeout=5) as so:
            so.sendall(raw)
            r, _ = read_response(so, 5)
            return r
    r = await in_thread(lower)
    assert r.status == 101, "lower-case header names"
    assert r.headers.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", (
        "Sec-WebSocket-Accept for the RFC 6455 sample key")


async def test_http_keep_alive(node):
    def two():
        with socket.create_connection((node.host, node.port), timeout=5) as so:
            so.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            r1, left = read_response(so, 5)
            assert not left, "extra bytes after the first response"
            so.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            r2, _ = read_response(so, 5)
            return r1, r2
    r1, r2 = await in_thread(two)
    assert (r1.status, r2.status) == (200, 200), "two requests on one HTTP/1.1 connection"


async def test_hostile_http_inputs_node_stays_up(start_node):
    n = start_node("--server.handshake-timeout=1s")
    async with Bystander(n):
        def send_raw(data, what):
            try:
                with socket.create_connection((n.host, n.port), timeout=5) as so:
                    try:
                        so.sendall(data)
                    except OSError:
                        return None
                    try:
                        r, _ = read_response(so, 3)
                    except (EOFError, TimeoutError, ConnectionResetError):
                        return None
            except OSError:
                return None
            assert 400 <= r.status < 500, f"{what}: answered {r.status}"
            if r.body:
                assert_error(r, r.status, r.json().get("error") if r.body[:1] == b"{"
                             else "<json>", what)
            return r

        def send_all():
            send_raw(b"HELLO\r\n\r\n", "garbage request line")
            r = send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 +
                         b"\r\n\r\n", "100 KB header")
            assert r is not None and r.status == 431, f"100 KB header answered {r!r}"
            send_raw(b"POST /api/users/1/messages HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: -5\r\n\r\n", "negative Content-Length")
            send_raw(b"GET /ws?userId=1 HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 2000 +
                     b"\r\n", "2000 header lines")
            send_raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),
                     "TLS client hello")
        await in_thread(send_all)
        assert (await in_thread(http, n, "GET", "/healthz")).status == 200, (
            "node answers after hostile input")
        c = await Client.connect(n, 1)
        await c.close()


async def test_broken_websocket_handshakes_get_json_errors(node):
    # an upgrade without a key / with another version: an error, not a
    # session, and (SPEC 2) every error body is JSON
    problems = []
    for hdrs, what in (({"Sec-WebSocket-Key": None}, "upgrade without Sec-WebSocket-Key"),
                       ({"Sec-WebSocket-Version": "8"}, "upgrade with version 8")):
        r, so, _ = await in_thread(lambda: upgrade(node, 1, headers=hdrs))
        if so:
            so.close()
        try:
            assert 400 <= r.status < 500, f"answered {r.status}"
            ct = r.headers.get("content-type", "")
            assert ct.startswith("application/json"), (
                f"{r.status} with Content-Type {ct!r} body {r.body[:100]!r}")
            j = r.json()
            assert_error(r, r.status, j.get("error"))
        except AssertionError as e:
            problems.append(f"{what}: {e}")
    assert not problems, "; ".join(problems)
    r = await in_thread(http, node, "GET", "/healthz")
    assert r.status == 200, "node answers afterwards"


# ---------------------------------------------------------------- upgrade: identity


async def test_bad_user_ids_exact_bodies(node):
    cases = [(None, REQUIRED), ("", REQUIRED), ("abc", INVALID), ("-1", INVALID),
             ("18446744073709551616", INVALID), ("12abc", INVALID), ("1.5", INVALID),
             ("0x10", INVALID), ("99999999999999999999999", INVALID)]
    for uid, body in cases:
        r, s, _ = await in_thread(upgrade, node, uid)
        j = assert_error(r, 400, "validation", f"userId={uid!r}")
        assert j == body, f"body for userId={uid!r}"
    # other query parameters but no userId
    r, s, _ = await in_thread(lambda: upgrade(node, path="/ws?user=5"))
    assert assert_error(r, 400, "validation", "no userId") == REQUIRED, "body, no userId"
    await poll_metric(node, lambda v: v >= len(cases) + 1,
                      "hubnode_handshakes_rejected_total", reason="validation")


async def test_user_id_canonicalised(node):
    for uid, want in (("007", "7"), ("0", "0"), ("000", "0"),
                      ("18446744073709551615", "18446744073709551615"), ("42", "42")):
        c = await Client.connect(node, uid)
        assert c.welcome.get("userId") == want, f"welcome userId for {uid!r}"
        await c.close()
    c = await Client.connect(node, None, path="/ws?foo=bar&userId=0042&x=")
    assert c.welcome.get("userId") == "42", "userId among other parameters"
    # 007 and 7 are the same user
    a = await Client.connect(node, "007")
    b = await Client.connect(node, "7")
    await b.send_msg("7", "same", ref="q")
    ma = await a.expect("message")
    assert ma.get("from") == "7", "from"
    await a.close()
    await b.close()


# ---------------------------------------------------------------- upgrade: origin


async def test_allowed_origins(start_node):
    n = start_node('--server.allowed-origins=["http://a.example","https://b.example"]')
    for origin in ("http://c.example", "http://a.example.evil", "https://a.example",
                   "http://A.example.com", "null"):
        r, s, _ = await in_thread(lambda: upgrade(n, 1, headers={"Origin": origin}))
        assert_error(r, 403, "forbidden_origin", f"Origin {origin}")
    for origin in ("http://a.example", "https://b.example", None):
        c = await Client.connect(n, 1, headers={"Origin": origin} if origin else None)
        assert c.welcome.get("type") == "welcome", f"Origin {origin}"
        await c.close()
    await poll_metric(n, lambda v: v >= 5, "hubnode_handshakes_rejected_total",
                      reason="forbidden_origin")


async def test_empty_allowed_origins_lets_any_origin(node):
    c = await Client.connect(node, 1, headers={"Origin": "http://anything.example"})
    assert c.welcome.get("type") == "welcome", "any Origin with the default []"
    await c.close()


# ---------------------------------------------------------------- upgrade: capacity


async def test_max_connections_503(start_node):
    n = start_node("--server.max-connections=5")
    async with Bystander(n):
        cs = [await Client.connect(n, u) for u in (1, 2, 3)]  # and the bystanders' 2
        r, s, _ = await in_thread(upgrade, n, 4)
        assert_error(r, 503, "over_capacity", "6th connection, cap 5")
        r, s, _ = await in_thread(upgrade, n, 1)
        assert_error(r, 503, "over_capacity", "6th connection (known user), cap 5")
        await cs[0].close()
        deadline = time.monotonic() + 3
        while True:
            r, s, _ = await in_thread(upgrade, n, 4)
            if r.status == 101:
                s.close()
                break
            assert time.monotonic() < deadline, (
                f"a freed slot was not reusable within 3s (last {r.status})")
            await asyncio.sleep(0.05)
        await poll_metric(n, lambda v: v >= 2, "hubnode_handshakes_rejected_total",
                          reason="over_capacity")
        for c in cs[1:]:
            await c.close()


async def test_max_connections_per_user_429(start_node):
    n = start_node("--server.max-connections-per-user=2")
    async with Bystander(n):
        a = await Client.connect(n, 9)
        b = await Client.connect(n, 9)
        r, s, _ = await in_thread(upgrade, n, 9)
        assert_error(r, 429, "too_many_connections", "3rd connection of user 9, cap 2")
        r, s, _ = await in_thread(upgrade, n, "009")
        assert_error(r, 429, "too_many_connections", "3rd connection as 009")
        other = await Client.connect(n, 10)  # other users unaffected
        await b.close()
        deadline = time.monotonic() + 3
        while True:
            r, s, _ = await in_thread(upgrade, n, 9)
            if r.status == 101:
                s.close()
                break
            assert time.monotonic() < deadline, f"slot of user 9 not freed (last {r.status})"
            await asyncio.sleep(0.05)
        await poll_metric(n, lambda v: v >= 2, "hubnode_handshakes_rejected_total",
                          reason="too_many_connections")
        await a.close()
        await other.close()


# ---------------------------------------------------------------- handshake timeout


def time_to_drop(n, script, limit=5.0):
    """Open a raw socket, run script(sock) (which sends what it wants, no
    reading), then wait for the server to end the connection. Returns the
    seconds from connect to EOF/reset, or None if still open after limit."""
    s = socket.create_connection((n.host, n.port))
    t0 = time.monotonic()
    try:
        script(s)
        while True:
            left = limit - (time.monotonic() - t0)
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - t0
            if not chunk:
                return time.monotonic() - t0
    finally:
        s.close()


def check_dropped(el, what, timeout=0.5):
    assert el is not None, f"{what}: still open 5s later (handshake-timeout {timeout}s)"
    assert el >= timeout * 0.8, (
        f"{what}: dropped after {el:.2f}s, before the "
        f"{timeout}s handshake-timeout")
    assert el <= timeout + 2.0, f"{what}: dropped only after {el:.2f}s"


async def test_handshake_timeout_partial_request_dropped(start_node):
    n = start_node("--server.handshake-timeout=500ms")
    el = await in_thread(time_to_drop, n, lambda s: s.sendall(
        b"GET /ws?userId=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"))
    check_dropped(el, "partial request")
    await poll_metric(n, lambda v: v >= 1, "hubnode_handshakes_rejected_total",
                      reason="timeout")


async def test_handshake_timeout_partial_http_body_dropped(start_node):
    n = start_node("--server.handshake-timeout=500ms", f"--server.api-key={KEY}")
    el = await in_thread(time_to_drop, n, lambda s: s.sendall(
        (f"POST /api/users/1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}"
         f"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
         f'{{"data":').encode()))
    check_dropped(el, "request with half its body")


async def test_handshake_timeout_silent_connection_dropped(start_node):
    n = start_node("--server.handshake-timeout=500ms")
    el = await in_thread(time_to_drop, n, lambda s: None)
    check_dropped(el, "connection that sends nothing")
    # it is a handshake that timed out like any other
    await poll_metric(n, lambda v: v >= 1, "hubnode_handshakes_rejected_total",
                      reason="timeout")


async def test_handshake_timeout_slowloris_dropped(start_node):
    req = (b"GET /ws?userId=1 HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200)

    def trickle(pace, most):
        def script(s):
            # a byte per pace: activity, but the request never completes
            for i in range(most):
                try:
                    s.sendall(req[i:i + 1])
                except OSError:
                    return
                s.settimeout(pace)
                try:
                    if s.recv(1, socket.MSG_PEEK) == b"":
                        return
                except socket.timeout:
                    pass
                except OSError:
                    return
        return script
    n = start_node("--server.handshake-timeout=2s")
    async with Bystander(n):
        for pace, what in ((1.0, "one byte a second"), (0.05, "one byte every 50 ms")):
            # bounded at 4 s of trickling: far past the timeout
            el = await in_thread(time_to_drop, n, trickle(pace, int(4 / pace)))
            check_dropped(el, what, timeout=2.0)


async def test_handshake_slow_but_within_timeout_ok(start_node):
    n = start_node("--server.handshake-timeout=1500ms")

    def slow():
        s = socket.create_connection((n.host, n.port))
        req = (b"GET /ws?userId=3 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
        s.sendall(req[:30])
        time.sleep(0.3)
        s.sendall(req[30:])
        r, left = read_response(s, 3)
        assert r.status == 101, "slow but complete upgrade"
        ws = RawWS(s, left)
        m = ws.recv_json(3, answer_pings=True)
        assert m.get("type") == "welcome", "first frame"
        s.close()
    await in_thread(slow)


async def test_handshake_timeout_does_not_apply_after_upgrade(start_node):
    n = start_node("--server.handshake-timeout=300ms")
    c = await Client.connect(n, 1)
    await asyncio.sleep(1.0)
    await c.quiet(what="after the handshake timeout")
    r = await in_thread(http, n, "GET", "/healthz")
    assert r.status == 200, "healthz"
    await c.close()

