"""SPEC section 8, channels, standalone mode: subscribe, publish and
unsubscribe with their errors in order, every subscriber seeing one channel's
publications in offset order, recovery on subscribe, the two HTTP routes,
the JWT `channels` claim; and cluster mode, where channels are not yet
served."""

import asyncio
import base64
import hashlib
import hmac
import json

from hubnode_testing import Client, assert_error, get_json, http, in_thread, poll_metric

KEY = "channels-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SECRET = "channels-test-secret-of-at-least-32-bytes"
CHANNEL = "room:1"


def start(start_node, *opts):
    return start_node(f"--server.api-key={KEY}", "--hub.rate-limit=100000", *opts)


async def subscribe(client, channel=CHANNEL, recover=None, ref=None):
    frame = {"type": "subscribe", "channel": channel, "ref": ref or client.next_ref()}
    if recover is not None:
        frame["recover"] = recover
    await client.send(frame)
    answer = await client.expect("subscribed")
    assert answer["channel"] == channel and answer["ref"] == frame["ref"]
    return answer


async def publish(client, data, channel=CHANNEL, ref=None):
    await client.send({"type": "publish", "channel": channel, "data": data,
                       "ref": ref or client.next_ref()})


async def publications(client, n):
    got = [await client.expect("publication") for _ in range(n)]
    return [(p["offset"], p["data"]) for p in got]


async def until_published(client):
    """The publications before the publisher's `published`, and that."""
    seen = []
    while True:
        m = await client.recv()
        if m["type"] == "published":
            return seen, m
        assert m["type"] == "publication", m
        seen.append(m)


async def api_publish(node, data, channel=CHANNEL):
    r = await in_thread(http, node, "POST", f"/api/channels/{channel}/publications",
                        headers=AUTH, body={"data": data})
    assert r.status == 202, r.body
    return r.json()


async def api_history(node, query="", channel=CHANNEL, status=200):
    r = await in_thread(http, node, "GET", f"/api/channels/{channel}/history{query}",
                        headers=AUTH)
    assert r.status == status, r.body
    return r


async def test_publications_reach_every_subscriber_in_order(start_node):
    node = start(start_node)
    clients = [await Client.connect(node, u) for u in (1, 2, 3)]
    for c in clients:
        sub = await subscribe(c)
        assert isinstance(sub["epoch"], str) and sub["epoch"]
        assert sub["offset"] == 0 and "recovered" not in sub
    for i in range(3):
        await publish(clients[0], {"n": i}, ref=f"p{i}")
    acks = []
    for _ in range(3):
        seen, published = await until_published(clients[0])
        acks.append(published)
    assert [(a["ref"], a["offset"], a["channel"]) for a in acks] == [
        ("p0", 1, CHANNEL), ("p1", 2, CHANNEL), ("p2", 3, CHANNEL)]
    for c in clients[1:]:
        got = [await c.expect("publication") for _ in range(3)]
        assert [(p["offset"], p["data"], p["from"]) for p in got] == [
            (1, {"n": 0}, "1"), (2, {"n": 1}, "1"), (3, {"n": 2}, "1")]
        assert [p["id"] for p in got] == [a["id"] for a in acks]
        assert all(p["channel"] == CHANNEL and isinstance(p["ts"], int) for p in got)
    await poll_metric(node, lambda v: v == 3, "hubnode_subscriptions_active")
    await poll_metric(node, lambda v: v == 1, "hubnode_channels_active")
    await poll_metric(node, lambda v: v == 3, "hubnode_publications_total")

    await clients[1].send({"type": "unsubscribe", "channel": CHANNEL, "ref": "u1"})
    gone = await clients[1].expect("unsubscribed")
    assert (gone["channel"], gone["ref"], gone["reason"]) == (CHANNEL, "u1", "client")
    await publish(clients[2], "after")
    _, published = await until_published(clients[2])
    assert published["offset"] == 4
    assert await publications(clients[0], 1) == [(4, "after")]
    await clients[1].quiet(what="unsubscribed")
    await clients[2].close()  # a closed connection's subscription goes with it
    await poll_metric(node, lambda v: v == 1, "hubnode_subscriptions_active")


async def test_errors_in_spec_order(start_node):
    node = start(start_node, "--channels.max-per-connection=2")
    c = await Client.connect(node, 5)

    async def error(frame, code):
        frame["ref"] = c.next_ref("e")
        await c.send(frame)
        m = await c.expect("error")
        assert (m["code"], m["ref"]) == (code, frame["ref"]), (frame, m)

    await error({"type": "subscribe"}, "bad_request")
    await error({"type": "publish", "channel": 7, "data": 1}, "bad_request")
    for bad in ("", "a b", "x" * 129, "room/1", "é"):
        await error({"type": "subscribe", "channel": bad}, "bad_channel")
    await error({"type": "publish", "channel": "a b", "data": 1}, "bad_channel")
    await error({"type": "publish", "channel": "free", "data": 1}, "not_subscribed")
    await error({"type": "unsubscribe", "channel": "free"}, "not_subscribed")
    await error({"type": "subscribe", "channel": "c1", "recover": {"offset": -1,
                                                                  "epoch": "e"}},
                "bad_request")
    await error({"type": "publish", "channel": "c1"}, "bad_request")
    await subscribe(c, "c1")
    await error({"type": "subscribe", "channel": "c1"}, "already_subscribed")
    await subscribe(c, "x" * 128)
    await error({"type": "subscribe", "channel": "c3"}, "too_many_subscriptions")
    await c.send({"type": "unsubscribe", "channel": "c1"})
    await c.expect("unsubscribed")
    await subscribe(c, "c3")
    await c.quiet()


async def away(node, count, first=1):
    """A subscriber that saw one publication leaves; `count` more are
    published (through WebSocket and HTTP). Returns the publisher and the
    position the subscriber last had."""
    publisher = await Client.connect(node, 11)
    await subscribe(publisher)
    c = await Client.connect(node, 10)
    sub = await subscribe(c)
    await publish(publisher, 0)
    await until_published(publisher)
    assert await publications(c, 1) == [(first, 0)]
    await c.close()
    for i in range(1, count + 1):
        if i % 2:
            await api_publish(node, i)
        else:
            await publish(publisher, i)
            await until_published(publisher)
    return publisher, {"offset": first, "epoch": sub["epoch"]}


async def test_recovery_replays_the_missed_then_live_without_duplicates(start_node):
    node = start(start_node)
    publisher, position = await away(node, 4)
    back = await Client.connect(node, 10)
    # a publisher keeps publishing while the subscribe with recover is served
    live = asyncio.ensure_future(asyncio.gather(*[publish(publisher, 100 + i)
                                                  for i in range(20)]))
    sub = await subscribe(back, recover=position)
    await live
    assert sub["recovered"] is True and sub["epoch"] == position["epoch"]
    last = 0
    for _ in range(20):
        _, published = await until_published(publisher)
        last = published["offset"]
    assert last == 25
    got = await publications(back, last - 1)
    assert [o for o, _ in got] == list(range(2, last + 1))
    assert [d for _, d in got[:4]] == [1, 2, 3, 4]  # the missed ones first
    await back.quiet()
    await poll_metric(node, lambda v: v >= 1, "hubnode_recoveries_total",
                      result="recovered")


async def test_wrong_epoch_or_trimmed_history_is_not_recovered(start_node):
    node = start(start_node, "--history.size=2")
    publisher, position = await away(node, 3)
    for top, recover in enumerate(({"offset": position["offset"], "epoch": "other"},
                                   position,  # 3 missed, 2 kept
                                   {"offset": 99, "epoch": position["epoch"]}), 4):
        c = await Client.connect(node, 12)
        sub = await subscribe(c, recover=recover)
        assert sub["recovered"] is False and sub["offset"] == top
        await c.quiet(what="not recovered")
        await publish(publisher, "live")
        await until_published(publisher)
        got = await c.expect("publication")
        assert got["data"] == "live"
        await c.close()
    other = start(start_node)  # another run of the node: another epoch
    c = await Client.connect(other, 12)
    sub = await subscribe(c, recover=position)
    assert sub["recovered"] is False and sub["epoch"] != position["epoch"]


async def test_http_publish_and_history(start_node):
    node = start(start_node, "--history.size=2000")
    c = await Client.connect(node, 20)
    await subscribe(c)
    first = await api_publish(node, {"text": "from the API", "n": 1.50})
    assert first["offset"] == 1 and isinstance(first["id"], str)
    got = await c.expect("publication")
    assert (got["from"], got["id"], got["data"]) == ("server", first["id"],
                                                     {"text": "from the API", "n": 1.5})
    for i in range(2, 6):
        await api_publish(node, i)
    await publications(c, 4)
    body = (await api_history(node, "?since=2&limit=2")).json()
    assert (body["channel"], body["offset"]) == (CHANNEL, 5)
    assert isinstance(body["epoch"], str) and body["epoch"]
    assert [(p["offset"], p["data"], p["from"]) for p in body["publications"]] == [
        (3, 3, "server"), (4, 4, "server")]
    assert set(body["publications"][0]) == {"id", "offset", "from", "data", "ts"}
    latest = (await api_history(node, "?limit=2")).json()
    assert [p["offset"] for p in latest["publications"]] == [4, 5]
    assert [p["offset"] for p in (await api_history(node)).json()["publications"]] == [
        1, 2, 3, 4, 5]
    assert (await api_history(node, "?since=5")).json()["publications"] == []
    empty = (await api_history(node, channel="room%3A2")).json()
    assert (empty["channel"], empty["offset"], empty["publications"]) == ("room:2", 0, [])

    # more than 1000 kept: a larger limit counts as 1000
    for i in range(1000):
        await c.send({"type": "publish", "channel": CHANNEL, "data": i})
    for _ in range(1000):
        await c.expect("publication")
        await c.expect("published")
    capped = (await api_history(node, "?limit=5000")).json()
    assert capped["offset"] == 1005
    assert [p["offset"] for p in capped["publications"]] == list(range(6, 1006))


async def test_http_validation(start_node):
    node = start(start_node)
    for path, method in ((f"/api/channels/{CHANNEL}/history", "GET"),
                         (f"/api/channels/{CHANNEL}/publications", "POST")):
        r = await in_thread(http, node, method, path, body={"data": 1})
        assert_error(r, 401, "unauthorized")
    r = await in_thread(http, node, "GET", f"/api/channels/{CHANNEL}/publications",
                        headers=AUTH)
    assert_error(r, 405, "method_not_allowed")
    for query in ("?since=-1", "?since=x", "?limit=", "?limit=1.5"):
        assert_error(await api_history(node, query, status=400), 400, "validation", query)
    for name in ("a%20b", "x" * 129, "%zz"):
        assert_error(await api_history(node, channel=name, status=400), 400, "validation",
                     name)
    r = await in_thread(http, node, "POST", "/api/channels/a%2Fb/publications",
                        headers=AUTH, body={"data": 1})
    assert_error(r, 400, "validation")
    r = await in_thread(http, node, "POST", f"/api/channels/{CHANNEL}/publications",
                        headers=AUTH, body={"nodata": 1})
    assert_error(r, 400, "bad_request")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(claims):
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64url(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return {"Authorization": f"Bearer {h}.{p}.{b64url(sig)}"}


async def test_jwt_channels_claim(start_node):
    node = start(start_node, "--auth.mode=jwt", f"--auth.jwt-secret={SECRET}")
    c = await Client.connect(node, None, headers=bearer({"sub": "30",
                                                         "channels": ["room:*", "lobby"]}))
    await subscribe(c, "room:7")
    await subscribe(c, "lobby")
    for name in ("lobby2", "roomx", "other"):
        await c.send({"type": "subscribe", "channel": name, "ref": name})
        m = await c.expect("error")
        assert (m["code"], m["ref"]) == ("forbidden", name)
    await c.send({"type": "publish", "channel": "other", "data": 1, "ref": "p"})
    assert (await c.expect("error"))["code"] == "forbidden"
    none = await Client.connect(node, None, headers=bearer({"sub": "31"}))
    await none.send({"type": "subscribe", "channel": "lobby"})
    assert (await none.expect("error"))["code"] == "forbidden"
    everything = await Client.connect(node, None, headers=bearer({"sub": "32",
                                                                  "channels": ["*"]}))
    await subscribe(everything, "anything.at:all")
    # the HTTP API is not limited by the claim
    await api_publish(node, "hi", channel="lobby")
    assert (await c.expect("publication"))["data"] == "hi"


async def test_cluster_mode_serves_channels_across_nodes(cluster_node):
    a = cluster_node("node-a", f"--server.api-key={KEY}")
    b = cluster_node("node-b", f"--server.api-key={KEY}")
    here = await Client.connect(a, 40)
    there = await Client.connect(b, 41)
    first = await subscribe(here, CHANNEL)
    second = await subscribe(there, CHANNEL)
    assert first["epoch"] == second["epoch"]
    await there.send({"type": "publish", "channel": CHANNEL, "data": 1, "ref": "p"})
    r = await in_thread(http, a, "POST", f"/api/channels/{CHANNEL}/publications",
                        headers=AUTH, body={"data": 2})
    assert r.status == 202
    for c in (here, there):
        got = [m for m in await c.barrier() if m["type"] == "publication"]
        while len(got) < 2:
            m = await c.recv()
            if m["type"] == "publication":
                got.append(m)
        assert [(m["offset"], m["data"]) for m in got] == [(1, 1), (2, 2)]
    history = (await in_thread(get_json, b, f"/api/channels/{CHANNEL}/history",
                               headers=AUTH))
    assert [p["offset"] for p in history["publications"]] == [1, 2]
