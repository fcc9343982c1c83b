"""SPEC section 8, direct messages, standalone mode: every message to a user
carries an offset in the user's stream, the welcome names the stream's
position, and a reconnect with recover=OFFSET&epoch=EPOCH gets exactly the
missed messages, in order, before the live ones."""

import asyncio
import time

from hubnode_testing import (Client, assert_error, http, in_thread, metric, upgrade,
                             ws_path)

KEY = "recovery-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
USER = 71
SENDER = 72


def start(start_node, *opts):
    return start_node(f"--server.api-key={KEY}", "--hub.rate-limit=10000", *opts)


def recover_path(user, offset, epoch):
    return ws_path(user, f"recover={offset}&epoch={epoch}")


async def api_send(node, user, data):
    r = await in_thread(http, node, "POST", f"/api/users/{user}/messages", headers=AUTH,
                        body={"data": data})
    assert r.status == 202, r.body


async def messages(client, n):
    got = [await client.expect("message") for _ in range(n)]
    return [(m["offset"], m["data"]) for m in got]


async def sent_while_away(node, sender, first, count):
    """`count` messages from `sender` (half of them through the API) with
    data first, first+1, ...; all acked, so all accepted."""
    for i in range(first, first + count):
        if i % 2:
            await api_send(node, USER, i)
        else:
            await sender.send_msg(str(USER), i, ref=f"a{i}")
            await sender.expect("ack")


async def away(node, count):
    """User USER connects once and leaves; then `count` messages are sent to
    it. Returns the sender and the welcome the user had."""
    sender = await Client.connect(node, SENDER)
    c = await Client.connect(node, USER)
    await c.close()
    await sent_while_away(node, sender, 1, count)
    return sender, c.welcome


async def test_offsets_and_recovery_of_missed_messages(start_node):
    node = start(start_node)
    sender = await Client.connect(node, SENDER)
    c = await Client.connect(node, USER)
    epoch = c.welcome["epoch"]
    assert isinstance(epoch, str) and epoch
    assert c.welcome["offset"] == 0
    assert "recovered" not in c.welcome
    await sent_while_away(node, sender, 1, 3)
    assert await messages(c, 3) == [(1, 1), (2, 2), (3, 3)]
    await c.close()
    await sent_while_away(node, sender, 4, 4)  # while away, API and WebSocket
    back = await Client.connect(node, USER, path=recover_path(USER, 3, epoch))
    assert back.welcome["recovered"] is True
    assert back.welcome["epoch"] == epoch
    assert back.welcome["offset"] == 7
    assert await messages(back, 4) == [(4, 4), (5, 5), (6, 6), (7, 7)]
    await sent_while_away(node, sender, 8, 1)
    assert await messages(back, 1) == [(8, 8)]
    await back.quiet()
    assert metric(node, "hubnode_recoveries_total", result="recovered") == 1


async def test_nothing_missed_is_recovered_with_nothing(start_node):
    node = start(start_node)
    c = await Client.connect(node, USER)
    await c.close()
    back = await Client.connect(node, USER, path=recover_path(USER, 0, c.welcome["epoch"]))
    assert back.welcome["recovered"] is True
    await back.quiet()


async def test_wrong_epoch_or_future_offset_is_not_recovered(start_node):
    node = start(start_node)
    _, welcome = await away(node, 2)
    for offset, epoch in ((0, "not-" + welcome["epoch"]), (3, welcome["epoch"])):
        back = await Client.connect(node, USER, path=recover_path(USER, offset, epoch))
        assert back.welcome["recovered"] is False
        assert back.welcome["offset"] == 2
        await back.quiet(what="no replay")
        await back.close()
    assert metric(node, "hubnode_recoveries_total", result="not_recovered") == 2


async def test_older_than_kept_is_not_recovered(start_node):
    node = start(start_node, "--history.user-size=3")
    _, welcome = await away(node, 5)
    epoch = welcome["epoch"]
    old = await Client.connect(node, USER, path=recover_path(USER, 1, epoch))
    assert old.welcome["recovered"] is False
    await old.quiet(what="no replay")
    kept = await Client.connect(node, USER, path=recover_path(USER, 2, epoch))
    assert kept.welcome["recovered"] is True
    assert await messages(kept, 3) == [(3, 3), (4, 4), (5, 5)]


async def test_expired_stream_is_not_recovered_and_gets_a_new_epoch(start_node):
    node = start(start_node, "--history.ttl=300ms", "--hub.sweep-interval=100ms")
    _, welcome = await away(node, 1)
    left = time.monotonic()
    # The stream is kept for history.ttl after its last entry: waiting for
    # that time to pass is the point of the test.
    await asyncio.sleep(max(0.0, left + 0.6 - time.monotonic()))
    back = await Client.connect(node, USER, path=recover_path(USER, 0, welcome["epoch"]))
    assert back.welcome["recovered"] is False
    assert back.welcome["epoch"] != welcome["epoch"]
    assert back.welcome["offset"] == 0
    await back.quiet(what="no replay")


async def test_restart_gives_a_new_epoch(start_node):
    first = start(start_node)
    c = await Client.connect(first, USER)
    await c.close()
    assert await in_thread(first.stop) == []
    second = start(start_node)
    back = await Client.connect(second, USER, path=recover_path(USER, 0, c.welcome["epoch"]))
    assert back.welcome["recovered"] is False
    assert back.welcome["epoch"] != c.welcome["epoch"]


async def test_bad_recover_or_epoch_is_a_validation_error(start_node):
    node = start(start_node)
    cases = [("recover=-1&epoch=e", "recover"), ("recover=1.5&epoch=e", "recover"),
             ("recover=&epoch=e", "recover"), ("recover=x&epoch=e", "recover"),
             ("recover=1", "epoch"), ("recover=1&epoch=", "epoch")]
    for query, field in cases:
        resp, _, _ = await in_thread(upgrade, node, path=ws_path(USER, query))
        j = assert_error(resp, 400, "validation", query)
        assert j.get("field") == field, query
    # A decimal offset too large for any stream is valid, and not recovered.
    c = await Client.connect(node, USER, path=recover_path(USER, "9" * 30, "e"))
    assert c.welcome["recovered"] is False


async def test_recovery_racing_live_messages_has_no_gap_and_no_duplicate(start_node):
    node = start(start_node, "--history.user-size=1000", "--history.recover-limit=1000")
    sender, welcome = await away(node, 20)
    connected = asyncio.Event()

    async def live():
        """One message per round trip, before, during and after the reconnect."""
        i, after = 20, 0
        while after < 50 and i < 900:
            i += 1
            await sender.send_msg(str(USER), i, ref=f"l{i}")
            await sender.expect("ack")
            after += connected.is_set()
        return i

    talking = asyncio.ensure_future(live())
    back = await Client.connect(node, USER, path=recover_path(USER, 0, welcome["epoch"]))
    connected.set()
    total = await talking
    assert back.welcome["recovered"] is True
    got = await messages(back, total)
    assert [offset for offset, _ in got] == list(range(1, total + 1))
    assert [data for _, data in got] == list(range(1, total + 1))
    # Some were live: the race took place.
    assert back.welcome["offset"] < total
    await back.quiet()
