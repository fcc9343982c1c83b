"""SPEC section 8 in cluster mode: user and channel streams kept in Redis,
shared by every node (one epoch and one run of offsets per stream), recovery
on whichever node a client comes back to, and guarantee 5 (never a silent
gap) across a Redis restart, a lost pub/sub link and a flush.

Two nodes on one redis-server, a fresh redis.key-prefix per test (conftest's
fixtures). The streams' keys are the implementation's choice: tests lose
them only through FLUSHALL or a restart of a redis-server without
persistence. A channel's subscription is live once `subscribed` arrives and
a connection is reachable once its welcome does (SPEC 3 and 8), so nothing
here waits for a subscription to spread.
"""

import asyncio
import time

from hubnode_testing import (Client, assert_error, http, in_thread, poll_until,
                             ws_path, wait_ready)

KEY = "cluster-streams-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHANNEL = "room:cs"
# a stream with this many entries and recoveries this long stay within what
# the nodes keep and replay, whatever the machine's speed
ROOMY = ("--history.size=1000", "--history.user-size=1000",
         "--history.recover-limit=1000")


async def two_nodes(cluster_node, *opts, **kw):
    """Nodes A and B on the test's Redis, both ready (Redis up)."""
    nodes = [cluster_node(nid, f"--server.api-key={KEY}", "--hub.rate-limit=100000",
                          *opts, **kw) for nid in ("s-a", "s-b")]
    for n in nodes:
        await in_thread(wait_ready, n)
    return nodes


# --------------------------------------------------------------------------
# direct messages


def recover_path(user, offset, epoch):
    return ws_path(user, f"recover={offset}&epoch={epoch}")


def welcome_epoch(client):
    """The epoch of the welcome's position (SPEC 8: welcome carries both)."""
    w = client.welcome
    assert isinstance(w.get("epoch"), str) and w["epoch"] and isinstance(
        w.get("offset"), int), f"SPEC 8: welcome carries epoch and offset: {w!r}"
    return w["epoch"]


async def recovering(node, user, offset, epoch):
    """A connection of `user` that asked to recover after (offset, epoch)."""
    return await Client.connect(node, user, path=recover_path(user, offset, epoch))


async def messages(client, n):
    """The next n frames, each a `message`, as (offset, data)."""
    got = [await client.expect("message") for _ in range(n)]
    return [(m.get("offset"), m.get("data")) for m in got]


async def send_acked(sender, user, data):
    """A `send` and its ack (so the message was accepted)."""
    await sender.send_msg(str(user), data, ref=f"d{data}")
    ack = await sender.expect("ack")
    assert ack.get("ref") == f"d{data}", ack
    return ack


async def api_message(node, user, data):
    r = await in_thread(http, node, "POST", f"/api/users/{user}/messages", headers=AUTH,
                        body={"data": data})
    assert r.status == 202, f"POST message answered {r.status} {r.body[:200]!r}"
    return r.json()


async def until_offline(redis_client, key_prefix, user):
    """SPEC 4: user out of P`online` (its grace period is over)."""
    await in_thread(poll_until, lambda: not redis_client.sismember(key_prefix + "online",
                                                                   str(user)),
                    3.0, what=f"user {user} out of P`online`")


# --------------------------------------------------------------------------
# channels


async def subscribe(client, channel=CHANNEL, recover=None):
    frame = {"type": "subscribe", "channel": channel, "ref": client.next_ref("s")}
    if recover is not None:
        frame["recover"] = recover
    await client.send(frame)
    answer = await client.expect("subscribed")
    assert (answer.get("channel"), answer.get("ref")) == (channel, frame["ref"]), answer
    return answer


def position(subscribed, offset=None):
    """The recover argument for a position in a `subscribed` answer's epoch."""
    return {"offset": subscribed["offset"] if offset is None else offset,
            "epoch": subscribed["epoch"]}


async def publish(client, data, channel=CHANNEL):
    ref = client.next_ref("p")
    await client.send({"type": "publish", "channel": channel, "data": data, "ref": ref})
    return ref


async def until_published(client):
    """The publications a publisher reads before its `published`, and that."""
    seen = []
    while True:
        m = await client.recv()
        if m.get("type") == "published":
            return seen, m
        assert m.get("type") == "publication", f"publisher got {m!r}"
        seen.append(m)


async def publish_acked(publisher, data):
    """A publication from a subscribed connection, up to its `published`."""
    await publish(publisher, data)
    return await until_published(publisher)


async def publications(client, n):
    """The next n frames, each a `publication`, as (offset, data)."""
    got = [await client.expect("publication") for _ in range(n)]
    return [(p.get("offset"), p.get("data")) for p in got]


async def api_publish(node, data, channel=CHANNEL):
    r = await in_thread(http, node, "POST", f"/api/channels/{channel}/publications",
                        headers=AUTH, body={"data": data})
    assert r.status == 202, f"POST publication answered {r.status} {r.body[:200]!r}"
    return r.json()


async def api_publish_once_up(node, data):
    """POST a publication, again while the node still answers 503 (Redis
    just came back)."""
    def post():
        r = http(node, "POST", f"/api/channels/{CHANNEL}/publications", headers=AUTH,
                 body={"data": data})
        return r if r.status == 202 else None
    return (await in_thread(poll_until, post, 5.0, what="POST publication 202")).json()


async def close_all(*clients):
    for c in clients:
        await c.close()


class Follower:
    """One connection's subscription watched for guarantee 5: every
    publication must carry the next offset; the only way out of that is an
    `unsubscribed` with reason insufficient_state, after which nothing of
    the channel may come until the connection subscribes again."""

    def __init__(self, client, subscribed, name):
        self.client, self.name = client, name
        self.epoch = subscribed["epoch"]
        self.last = subscribed["offset"]
        self.ended = False
        self.seen = []

    async def follow(self, last_id, timeout=5.0):
        """Read until the publication with id last_id or the end of the
        subscription."""
        deadline = time.monotonic() + timeout
        while not self.ended:
            left = deadline - time.monotonic()
            assert left > 0, (f"{self.name}: neither every publication up to {last_id} nor "
                              f"insufficient_state within {timeout}s (offsets seen "
                              f"{self.seen})")
            m = await self.client.recv(left)
            if self._take(m) == last_id:
                return

    def _take(self, m):
        if m.get("type") == "unsubscribed":
            assert (m.get("channel"), m.get("reason")) == (CHANNEL, "insufficient_state"), (
                f"{self.name}: {m!r}")
            self.ended = True
            return None
        assert m.get("type") == "publication" and m.get("channel") == CHANNEL, (
            f"{self.name}: unexpected {m!r}")
        assert m.get("offset") == self.last + 1, (
            f"guarantee 5: {self.name} got offset {m.get('offset')} after {self.last} "
            f"without insufficient_state (offsets seen {self.seen})")
        self.last = m["offset"]
        self.seen.append(self.last)
        return m.get("id")

    async def resubscribe(self):
        """A subscriber that was ended comes back with its last position."""
        answer = await subscribe(self.client, recover={"offset": self.last,
                                                       "epoch": self.epoch})
        old, self.epoch, self.ended = self.epoch, answer["epoch"], False
        if not answer["recovered"]:
            self.last = answer["offset"]
        return answer, old


async def followers(nodes_users):
    """A Follower per (node, user), each subscribed to CHANNEL."""
    out = []
    for i, (node, user) in enumerate(nodes_users):
        c = await Client.connect(node, user)
        out.append(Follower(c, await subscribe(c), f"subscriber {i} (user {user}, "
                                                   f"node {node.node})"))
    return out


# --------------------------------------------------------------------------
# guarantee 1: fan-out across nodes


async def test_every_subscriber_on_both_nodes_gets_each_publication_once_in_one_order(
        cluster_node):
    """Guarantees 1 and 2: publications from both nodes' connections and from
    HTTP on both reach every subscription once, with consecutive offsets, in
    the same order on every connection."""
    a, b = await two_nodes(cluster_node)
    subs = [await Client.connect(n, u) for n, u in ((a, 1), (a, 1), (a, 2),
                                                    (b, 1), (b, 3), (b, 3))]
    pubs = [await Client.connect(a, 10), await Client.connect(b, 11)]
    answers = [await subscribe(c) for c in subs + pubs]
    assert len({s["epoch"] for s in answers}) == 1, f"one epoch per channel: {answers!r}"
    assert all(s["offset"] == 0 and "recovered" not in s for s in answers), answers
    n_ws, n_http = 15, 10

    async def by_websocket(p):
        """Refs in send order, `published` answers, and the publications
        read before the last of them."""
        refs = [await publish(p, {"by": p.user, "i": i}) for i in range(n_ws)]
        acks, early = [], []
        while len(acks) < n_ws:
            seen, published = await until_published(p)
            early += seen
            acks.append(published)
        return refs, acks, early

    async def by_http():
        return [await api_publish((a, b)[i % 2], {"by": "api", "i": i})
                for i in range(n_http)]

    *ws_results, posted = await asyncio.gather(*(by_websocket(p) for p in pubs), by_http())
    total = 2 * n_ws + n_http
    answered = {j["id"]: (j["offset"], "server") for j in posted}
    for p, (refs, acks, _) in zip(pubs, ws_results):
        assert [g.get("ref") for g in acks] == refs, "published answers, in send order"
        assert all(g.get("channel") == CHANNEL for g in acks), acks[:2]
        offsets = [g.get("offset") for g in acks]
        assert offsets == sorted(set(offsets)), (
            f"SPEC 8: one connection's publications get increasing offsets: {offsets}")
        answered.update({g["id"]: (g["offset"], p.user) for g in acks})
    assert sorted(o for o, _ in answered.values()) == list(range(1, total + 1)), (
        "guarantee 2: published and 202 offsets are 1..N, each once")
    early = {id(p): r[2] for p, r in zip(pubs, ws_results)}
    orders = []
    for c in subs + pubs:
        got = list(early.get(id(c), []))
        got += [await c.expect("publication") for _ in range(total - len(got))]
        assert [p.get("offset") for p in got] == list(range(1, total + 1)), (
            f"guarantee 1: offsets on a connection of user {c.user}")
        assert all(answered.get(p.get("id")) == (p["offset"], p.get("from")) for p in got), (
            "publication id, offset and from as answered to its publisher")
        orders.append([p["id"] for p in got])
    assert all(o == orders[0] for o in orders), "guarantee 1: one order everywhere"
    for c in subs + pubs:
        await c.quiet(what="guarantee 1: exactly once")
    await close_all(*subs, *pubs)


# --------------------------------------------------------------------------
# direct messages: offsets, kept while offline, recovery on the other node


async def test_direct_messages_carry_offsets_and_recover_on_the_other_node(
        cluster_node, redis_client, key_prefix):
    """SPEC 8 direct messages and guarantee 3: offsets on `message`, the
    stream's position on `welcome` (one epoch on both nodes), messages kept
    while the user is offline, recovery on the node the user did not leave."""
    a, b = await two_nodes(cluster_node)
    sender = await Client.connect(a, 20)
    on_a, on_b = await Client.connect(a, 21), await Client.connect(b, 21)
    epoch = welcome_epoch(on_a)
    assert on_b.welcome.get("epoch") == epoch, "one user stream, one epoch on both nodes"
    assert (on_a.welcome.get("offset"), on_b.welcome.get("offset")) == (0, 0)
    assert "recovered" not in on_a.welcome
    for i in (1, 2, 3):
        assert (await send_acked(sender, 21, i)).get("online") is True
    for c in (on_a, on_b):
        assert await messages(c, 3) == [(1, 1), (2, 2), (3, 3)], "offsets on A and B"
    await close_all(on_a, on_b)
    await until_offline(redis_client, key_prefix, 21)
    for i in (4, 5):
        assert (await send_acked(sender, 21, i)).get("online") is False
    assert (await api_message(b, 21, 6)).get("online") is False
    assert (await send_acked(sender, 21, 7)).get("online") is False
    back = await recovering(b, 21, 3, epoch)
    assert (back.welcome.get("recovered"), back.welcome.get("epoch"),
            back.welcome.get("offset")) == (True, epoch, 7), back.welcome
    assert await messages(back, 4) == [(4, 4), (5, 5), (6, 6), (7, 7)], (
        "guarantee 3: exactly the missed ones, in order")
    await send_acked(sender, 21, 8)
    assert await messages(back, 1) == [(8, 8)], "then live ones"
    await back.quiet(what="no duplicate")

    # a user who never connected: its messages are kept all the same
    for i in (1, 2):
        assert (await send_acked(sender, 22, i)).get("online") is False
    first = await Client.connect(b, 22)
    assert first.welcome.get("offset") == 2, f"SPEC 8: kept for an offline user {first.welcome!r}"
    await first.quiet(what="no replay without recover")
    again = await recovering(a, 22, 0, welcome_epoch(first))
    assert again.welcome.get("recovered") is True, again.welcome
    assert await messages(again, 2) == [(1, 1), (2, 2)]
    await close_all(sender, back, first, again)


# --------------------------------------------------------------------------
# guarantee 3 under a live stream


class Meanwhile:
    """async with Meanwhile(step): step(1), step(2), ... one after the other
    while the block runs. The step under way when the block ends finishes
    (no cancellation: asyncio.wait_for of Python 3.11 may swallow one)."""

    def __init__(self, step):
        self.step, self.done, self.stopped = step, 0, False

    async def __aenter__(self):
        self.task = asyncio.ensure_future(self._run())
        return self

    async def _run(self):
        while not self.stopped:
            await self.step(self.done + 1)
            self.done += 1

    async def __aexit__(self, exc_type, *_):
        self.stopped = True
        if exc_type is not None:  # the block's failure is the one to show
            self.task.cancel()
            return
        await asyncio.wait_for(self.task, 5.0)


async def come_back_four_times(nodes, last, come_back, read):
    """Four returns after `last`, alternating between nodes, each reading the
    next 30 entries (data = offset) and leaving while more come."""
    for round_, node in enumerate(nodes * 2):
        back = await come_back(node, last)
        got = await read(back, 30)
        assert got == [(o, o) for o in range(last + 1, last + 31)], (
            f"round {round_} on node {node.node}: offsets after {last}: {got}")
        last = got[-1][0]
        await back.close()
    return last


async def test_user_recovering_while_messages_keep_coming_gets_each_offset_once(
        cluster_node):
    """Guarantee 3: a user that reconnects with recover, on alternate nodes,
    while a sender on A keeps sending: across the replay/live boundary no
    offset twice and none skipped."""
    a, b = await two_nodes(cluster_node, *ROOMY)
    sender = await Client.connect(a, 30)
    first = await Client.connect(b, 31)
    epoch = welcome_epoch(first)
    await first.close()

    async def come_back(node, last):
        back = await recovering(node, 31, last, epoch)
        assert back.welcome.get("recovered") is True, back.welcome
        return back

    async with Meanwhile(lambda i: send_acked(sender, 31, i)):
        await come_back_four_times((a, b), first.welcome["offset"], come_back, messages)
    await sender.close()


async def test_subscriber_recovering_while_publications_keep_coming_gets_each_offset_once(
        cluster_node):
    """Guarantee 3 for a channel: a subscriber that comes back with recover,
    on alternate nodes, while a publisher on A keeps publishing."""
    a, b = await two_nodes(cluster_node, *ROOMY)
    publisher = await Client.connect(a, 40)
    await subscribe(publisher)
    first = await Client.connect(b, 41)
    epoch = (await subscribe(first))["epoch"]
    await first.close()

    async def come_back(node, last):
        back = await Client.connect(node, 41)
        answer = await subscribe(back, recover={"offset": last, "epoch": epoch})
        assert (answer.get("recovered"), answer.get("epoch")) == (True, epoch), answer
        return back

    async with Meanwhile(lambda i: publish_acked(publisher, i)):
        await come_back_four_times((a, b), 0, come_back, publications)
    await publisher.close()


# --------------------------------------------------------------------------
# channel recovery on the other node, history route


async def away_from_channel(a, b, user, count):
    """A subscriber on A that saw offset 1 leaves; `count` more publications
    follow from a connection on B and from HTTP on A. Returns the publisher
    (on B, subscribed) and the position the subscriber left at."""
    publisher = await Client.connect(b, 50)
    await subscribe(publisher)
    c = await Client.connect(a, user)
    sub = await subscribe(c)
    await publish_acked(publisher, 0)
    assert await publications(c, 1) == [(1, 0)]
    await c.close()
    for i in range(1, count + 1):
        if i % 2:
            await api_publish(a, i)
        else:
            await publish_acked(publisher, i)
    return publisher, position(sub, 1)


async def test_subscribe_with_recover_on_the_other_node(cluster_node):
    """Guarantee 3 for channels: `subscribed` with recovered:true on B for a
    position taken on A, the missed publications in order, then live ones."""
    a, b = await two_nodes(cluster_node)
    publisher, at = await away_from_channel(a, b, 51, 5)
    back = await Client.connect(b, 51)
    answer = await subscribe(back, recover=at)
    assert (answer.get("recovered"), answer.get("epoch"), answer.get("offset")) == (
        True, at["epoch"], 6), answer
    assert await publications(back, 5) == [(o, o - 1) for o in range(2, 7)]
    await api_publish(a, "live")
    assert await publications(back, 1) == [(7, "live")]
    await back.quiet(what="each offset once")
    await close_all(publisher, back)


async def test_history_route_answers_entries_made_on_another_node(cluster_node):
    """SPEC 8 HTTP: GET .../history on B lists what was published through A."""
    a, b = await two_nodes(cluster_node)
    publisher, at = await away_from_channel(a, b, 52, 4)
    r = await in_thread(http, b, "GET", f"/api/channels/{CHANNEL}/history?since=2&limit=2",
                        headers=AUTH)
    assert r.status == 200, f"history answered {r.status} {r.body[:200]!r}"
    body = r.json()
    assert (body.get("channel"), body.get("epoch"), body.get("offset")) == (
        CHANNEL, at["epoch"], 5), body
    assert [(p.get("offset"), p.get("data"), p.get("from")) for p in body["publications"]] == [
        (3, 2, "50"), (4, 3, "server")]
    r = await in_thread(http, a, "GET", f"/api/channels/{CHANNEL}/history", headers=AUTH)
    assert [p.get("offset") for p in r.json()["publications"]] == [1, 2, 3, 4, 5]
    await publisher.close()


# --------------------------------------------------------------------------
# guarantee 4: trimmed, too many, expired, flushed


async def test_trimmed_or_too_long_history_is_not_recovered(cluster_node):
    """Guarantee 4 and the recover-limit: with 4 entries kept and at most 3
    replayed, positions 1 and 2 behind a top of 6 are not recovered (nothing
    replayed, live ones follow), position 3 is."""
    a, b = await two_nodes(cluster_node, "--history.size=4", "--history.user-size=4",
                           "--history.recover-limit=3")
    sender = await Client.connect(a, 60)
    user = await Client.connect(a, 61)
    await user.close()
    for i in range(1, 7):
        await send_acked(sender, 61, i)
    epoch = welcome_epoch(user)
    for offset in (0, 2, 7):  # trimmed, 4 missed, past the end
        c = await recovering(b, 61, offset, epoch)
        assert (c.welcome.get("recovered"), c.welcome.get("offset")) == (False, 6), (
            offset, c.welcome)
        await c.quiet(what=f"no replay after offset {offset}")
        await c.close()
    c = await recovering(b, 61, 3, epoch)
    assert c.welcome.get("recovered") is True
    assert await messages(c, 3) == [(4, 4), (5, 5), (6, 6)]

    publisher, at = await away_from_channel(a, b, 62, 5)  # top 6, 2..6 missed
    refused = []
    for offset in (1, 2, 7):
        s = await Client.connect(b, 62)
        answer = await subscribe(s, recover=position(at, offset))
        assert (answer.get("recovered"), answer.get("offset")) == (False, 6), (
            offset, answer)
        await s.quiet(what=f"no replay after offset {offset}")
        refused.append(s)
    s = await Client.connect(b, 62)
    answer = await subscribe(s, recover=position(at, 3))
    assert answer.get("recovered") is True, answer
    assert await publications(s, 3) == [(4, 3), (5, 4), (6, 5)]
    await api_publish(a, "live")
    for x in refused + [s]:
        assert await publications(x, 1) == [(7, "live")], "live ones follow"
    await close_all(sender, c, publisher, s, *refused)


async def test_expired_streams_are_not_recovered_and_readers_keep_theirs(cluster_node):
    """Guarantee 4, expiry: a stream with no entry and no reader for longer
    than history.ttl gives recovered:false and a new epoch starting again at
    offset 0; a stream whose user or subscriber stayed connected is kept."""
    ttl = 0.6
    a, b = await two_nodes(cluster_node, f"--history.ttl={int(ttl * 1000)}ms")
    sender = await Client.connect(a, 70)
    gone, stays = await Client.connect(a, 71), await Client.connect(a, 72)
    await gone.close()
    await send_acked(sender, 71, 1)
    await send_acked(sender, 72, 1)
    assert await messages(stays, 1) == [(1, 1)]
    leaving, watching = await Client.connect(a, 73), await Client.connect(a, 74)
    left_at = position(await subscribe(leaving, "room:gone"))
    kept_at = position(await subscribe(watching, "room:kept"))
    await leaving.close()
    await api_publish(a, 1, channel="room:gone")
    await api_publish(a, 1, channel="room:kept")
    assert await publications(watching, 1) == [(1, 1)]
    # Outliving history.ttl (after the grace period and a heartbeat for a
    # reader's last refresh, with room for a loaded machine) is what the
    # test is about.
    await asyncio.sleep(ttl + 1.2)

    back = await recovering(b, 71, 0, welcome_epoch(gone))
    assert back.welcome.get("recovered") is False, back.welcome
    assert back.welcome.get("epoch") != welcome_epoch(gone), "expired: a new epoch"
    assert back.welcome.get("offset") == 0, back.welcome
    await back.quiet(what="no replay")
    other = await recovering(b, 72, 0, welcome_epoch(stays))
    assert other.welcome.get("recovered") is True, "a connected user keeps its stream"
    assert await messages(other, 1) == [(1, 1)]

    s = await Client.connect(b, 73)
    answer = await subscribe(s, "room:gone", recover=left_at)
    assert (answer.get("recovered"), answer.get("offset")) == (False, 0), answer
    assert answer.get("epoch") != left_at["epoch"], "expired: a new epoch"
    t = await Client.connect(b, 74)
    answer = await subscribe(t, "room:kept", recover=kept_at)
    assert answer.get("recovered") is True, "a channel with a subscriber keeps its stream"
    assert await publications(t, 1) == [(1, 1)]
    await close_all(sender, stays, watching, back, other, s, t)


async def test_flushed_redis_starts_new_epochs(cluster_node, redis_client):
    """Guarantee 4, another epoch (Redis flushed): recovered:false and a new
    epoch for a user and a channel; guarantee 5: a subscriber that stayed
    subscribed across the flush gets insufficient_state before any entry of
    the new epoch."""
    a, b = await two_nodes(cluster_node)
    sender = await Client.connect(a, 80)
    user = await Client.connect(a, 81)
    await user.close()
    await send_acked(sender, 81, 1)
    publisher, at = await away_from_channel(a, b, 82, 1)
    [staying] = await followers([(b, 83)])
    await in_thread(redis_client.flushall)

    back = await recovering(b, 81, 0, welcome_epoch(user))
    assert back.welcome.get("recovered") is False, back.welcome
    assert back.welcome.get("epoch") != welcome_epoch(user), "flushed: a new epoch"
    await back.quiet(what="no replay")
    s = await Client.connect(b, 82)
    answer = await subscribe(s, recover=at)
    assert answer.get("recovered") is False, answer
    assert answer.get("epoch") != at["epoch"], "flushed: a new epoch"
    posted = await api_publish(a, "new")
    assert await publications(s, 1) == [(posted["offset"], "new")]
    await staying.follow(posted["id"])
    assert staying.ended, "guarantee 5: insufficient_state for the epoch change"
    await staying.client.quiet(what="nothing after insufficient_state")
    await close_all(sender, back, publisher, s, staying.client)


# --------------------------------------------------------------------------
# guarantee 5: Redis restarted, pub/sub link lost


async def test_redis_restart_never_leaves_a_silent_gap(cluster_node, redis_server):
    """Guarantee 5 across a Redis restart that lost every stream: each
    subscriber on either node gets every offset in order or insufficient_state;
    after subscribing again publications flow."""
    a, b = await two_nodes(cluster_node)
    subs = await followers([(a, 90), (a, 91), (b, 92), (b, 93)])
    for i in range(3):
        last = await api_publish((a, b)[i % 2], i)
    for s in subs:
        await s.follow(last["id"])
    await in_thread(redis_server.stop)
    await in_thread(redis_server.start)
    for n in (a, b):
        await in_thread(wait_ready, n, 5.0)
    for i in range(3):
        last = await api_publish_once_up((a, b)[i % 2], f"after {i}")
    for s in subs:
        await s.follow(last["id"])
        if s.ended:
            answer, old = await s.resubscribe()
            assert answer.get("recovered") is False and answer.get("epoch") != old, (
                f"{s.name}: the stream was lost: {answer!r}")
    for i in range(3):
        last = await api_publish((a, b)[i % 2], f"again {i}")
    for s in subs:
        before = s.last
        await s.follow(last["id"])
        assert not s.ended and s.last == before + 3, f"{s.name}: publications flow again"
    await close_all(*(s.client for s in subs))


async def test_lost_pubsub_link_never_leaves_a_silent_gap(cluster_node, redis_client):
    """Guarantee 5 across a lost pub/sub link (CLIENT KILL TYPE pubsub) while
    B keeps publishing: each subscriber sees every offset in order or gets
    insufficient_state, and then recovers the rest (Redis kept it)."""
    a, b = await two_nodes(cluster_node)
    subs = await followers([(a, 100), (a, 101), (b, 102), (b, 103)])
    killed = []

    def publish_and_kill():
        out = []
        for i in range(60):
            r = http(b, "POST", f"/api/channels/{CHANNEL}/publications", headers=AUTH,
                     body={"data": i})
            assert r.status == 202, f"POST publication answered {r.status} {r.body[:200]!r}"
            out.append(r.json())
            if i in (15, 35):
                killed.append(redis_client.client_kill_filter(_type="pubsub"))
            time.sleep(0.01)  # a publisher's pace, so that the nodes link again meanwhile
        return out

    posted = await in_thread(publish_and_kill)
    assert killed[0] >= 2, f"test precondition: both nodes' pub/sub links killed {killed}"
    top = posted[-1]
    for s in subs:
        await s.follow(top["id"])
        if s.ended:
            answer, old = await s.resubscribe()
            assert (answer.get("recovered"), answer.get("epoch")) == (True, old), (
                f"{s.name}: Redis kept the stream, so it recovers: {answer!r}")
            await s.follow(top["id"])
        assert s.last == top["offset"], s.name
    await api_publish(a, "after")
    for s in subs:
        assert await publications(s.client, 1) == [(top["offset"] + 1, "after")]
        await s.client.quiet(what=f"{s.name}: each offset once")
    await close_all(*(s.client for s in subs))


# --------------------------------------------------------------------------
# Redis down


async def test_redis_down_channels_unavailable_and_messages_local_without_offsets(
        cluster_node, redis_server):
    """SPEC 8 with Redis down in cluster mode: subscribe and publish answer
    `unavailable`, POST publication 503 redis_down, direct messages are
    delivered locally without `offset`, `welcome` has no epoch, `recover`
    gives recovered:false; once Redis is back channels serve again."""
    a, _ = await two_nodes(cluster_node)
    member = await Client.connect(a, 110)
    await subscribe(member)
    before = await Client.connect(a, 111)
    welcome_epoch(before)
    await in_thread(redis_server.stop)
    await in_thread(poll_until, lambda: http(a, "GET", "/healthz").json()["redis"] == "down",
                    3.0, what="node A sees Redis down")

    await publish(member, "down")
    m = await member.expect("error")
    assert m.get("code") == "unavailable", f"publish on a subscription while down: {m!r}"
    other = await Client.connect(a, 112)
    assert "epoch" not in other.welcome and "offset" not in other.welcome, other.welcome
    await other.send({"type": "subscribe", "channel": "room:x", "ref": "sx"})
    m = await other.expect("error")
    assert (m.get("code"), m.get("ref")) == ("unavailable", "sx"), m
    r = await in_thread(http, a, "POST", f"/api/channels/{CHANNEL}/publications",
                        headers=AUTH, body={"data": 1})
    assert_error(r, 503, "redis_down")
    r = await in_thread(http, a, "GET", f"/api/channels/{CHANNEL}/history", headers=AUTH)
    assert_error(r, 503, "redis_down")

    await other.send_msg("111", "local")
    await other.expect("ack")
    m = await before.expect("message")
    assert m.get("data") == "local" and "offset" not in m, f"delivered without offset: {m!r}"
    again = await recovering(a, 111, 0, welcome_epoch(before))
    assert again.welcome.get("recovered") is False, again.welcome
    assert "epoch" not in again.welcome, again.welcome
    await again.quiet(what="no replay while Redis is down")

    await in_thread(redis_server.start)
    await in_thread(wait_ready, a, 5.0)
    later = await Client.connect(a, 113)
    await subscribe(later, "room:x")
    await close_all(member, before, other, again, later)
