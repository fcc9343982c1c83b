"""SPEC 3 "Timing" across nodes: a connection is registered, and in cluster
mode its node is subscribed to its user's delivery channel, before its
welcome is sent, so a message sent to its user after the welcome reaches it
from every node.

Two nodes on one redis-server, the user connected on both, one
POST /api/users/{id}/messages to node A right after both welcomes: node B's
copy travels over Redis pub/sub and must arrive too. Repeated with a fresh
user each round, since only the first connection of a user on a node
subscribes.
"""

import asyncio

from hubnode_testing import Client, http, in_thread, recv_until, wait_ready

API_KEY = "timing-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ROUNDS = 30
RECEIVE_TIMEOUT = 3.0


async def received(client, data):
    """Whether the message with `data` arrives within RECEIVE_TIMEOUT."""
    try:
        await recv_until(client, lambda m: m.get("type") == "message" and
                         m.get("data") == data, RECEIVE_TIMEOUT, what="message")
        return True
    except AssertionError:
        return False


async def test_post_right_after_both_welcomes_reaches_both_nodes(cluster_node):
    a = cluster_node("t-a", f"--server.api-key={API_KEY}")
    b = cluster_node("t-b", f"--server.api-key={API_KEY}")
    for n in (a, b):
        await in_thread(wait_ready, n)
    misses = []
    for i in range(ROUNDS):
        user = 5100 + i
        on_a, on_b = await asyncio.gather(Client.connect(a, user), Client.connect(b, user))
        r = await in_thread(http, a, "POST", f"/api/users/{user}/messages", headers=AUTH,
                            body={"data": i})
        assert r.status == 202, f"POST answered {r.body[:200]!r}"
        assert r.json().get("online") is True, "online for a user connected here"
        got_a, got_b = await asyncio.gather(received(on_a, i), received(on_b, i))
        misses += [f"round {i} on {where}"
                   for where, got in (("A", got_a), ("B", got_b)) if not got]
        await asyncio.gather(on_a.close(), on_b.close())
    assert not misses, f"{len(misses)} of {ROUNDS} rounds lost a copy: {misses}"
