"""SPEC section 3: "Fidelity" (data reaches every recipient as the JSON text
the sender wrote) and "Identity" (message ids not reused across restarts),
over the wire: WebSocket send and the HTTP API, comparing the raw text of
the delivered frame, not its parsed value."""

import asyncio
import json
import re

import pytest
import websockets.exceptions

from hubnode_testing import Client, http, in_thread

KEY = "fidelity-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SENDER, RECIPIENT = "1", "2"

# data texts whose JSON value survives a parse and re-serialisation only
# approximately, or not as the same text
DATA_TEXTS = [
    "1.5",
    "123456789012345678901234567890",
    "-123456789012345678901234567890.000000000000000000001",
    "1e400",
    "-1E-400",
    "-0",
    "-0.0",
    "2.50",
    "1E+2",
    '"\\u00e9\\n\\"\\\\\\/\\ud83d\\ude00 \\u0000"',
    '{"z":1,"a":{"y":[1.10,{"b":null,"a":true}],"x":false},"m":"é"}',
    '[18446744073709551616,-9223372036854775809,0.1,1e-7,100]',
]

# `offset` only in standalone mode (SPEC section 8), not yet in cluster mode.
MESSAGE_RE = re.compile(r'\{"type":"message","id":"[^"]+",(?:"offset":\d+,)?'
                        r'"from":"(?:1|server)","data":(?P<data>.*),"ts":\d+\}', re.S)


def without_space(text):
    """text without the whitespace outside strings, which the node may drop."""
    out, in_string, escaped = [], False, False
    for c in text:
        if in_string:
            escaped = c == "\\" and not escaped
            in_string = escaped or c != '"'
        elif c in " \t\r\n":
            continue
        else:
            in_string = c == '"'
        out.append(c)
    return "".join(out)


def strict_json(raw):
    """raw parsed as RFC 8259 JSON: Python would take Infinity and NaN."""
    def refuse(name):
        raise AssertionError(f"frame holds {name}, which is not JSON: {raw[:200]!r}")
    return json.loads(raw, parse_constant=refuse)


async def recv_raw(client, timeout=3.0):
    try:
        raw = await asyncio.wait_for(client.ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no frame within {timeout}s")
    except websockets.exceptions.ConnectionClosed as e:
        raise AssertionError(f"connection closed while waiting for a frame: {e}")
    assert isinstance(raw, str), f"server sent a binary frame: {raw[:100]!r}"
    return raw


async def received_data(client):
    """The text of `data` in the next frame, a message, which must be JSON."""
    raw = await recv_raw(client)
    assert strict_json(raw).get("type") == "message", f"not a message: {raw[:200]!r}"
    m = MESSAGE_RE.fullmatch(raw)
    assert m, f"message frame not in the expected layout: {raw[:200]!r}"
    return m.group("data")


def assert_same_text(got, sent):
    assert without_space(got) == without_space(sent), (
        f"data arrived as {got!r}, sent as {sent!r}")


async def send_raw(sender, frame):
    await sender.send(frame)
    ack = strict_json(await recv_raw(sender))
    assert ack.get("type") == "ack", f"expected an ack for {frame!r}, got {ack!r}"
    return ack


async def api_post(node, body):
    """POST body to the recipient's messages; the 202 answer."""
    r = await in_thread(http, node, "POST", f"/api/users/{RECIPIENT}/messages",
                        headers=AUTH, body=body)
    assert r.status == 202, f"POST {body!r}: {r.status} {r.body[:200]!r}"
    return r


@pytest.fixture
def api_node(start_node):
    return start_node(f"--server.api-key={KEY}")


async def connect_pair(node):
    return (await Client.connect(node, int(SENDER)),
            await Client.connect(node, int(RECIPIENT)))


async def test_websocket_send_keeps_data_text(api_node):
    sender, recipient = await connect_pair(api_node)
    for text in DATA_TEXTS:
        await send_raw(sender, f'{{"type":"send","to":"{RECIPIENT}","data":{text}}}')
        assert_same_text(await received_data(recipient), text)


async def test_http_api_keeps_data_text(api_node):
    _, recipient = await connect_pair(api_node)
    for text in DATA_TEXTS:
        await api_post(api_node, f'{{"data":{text}}}')
        assert_same_text(await received_data(recipient), text)


async def test_whitespace_outside_strings_only_may_go(api_node):
    sender, recipient = await connect_pair(api_node)
    text = '{ "a" : [ 1.50 ,\n\t"x  y" ] , "b":{ } }'
    await send_raw(sender, f'{{ "type" : "send" , "to" : "{RECIPIENT}" ,\n "data" :  {text}  }}')
    assert_same_text(await received_data(recipient), text)
    await api_post(api_node, f'\n{{ "data" :\t{text} }}\n')
    assert_same_text(await received_data(recipient), text)


async def test_last_of_repeated_data_and_escaped_name(api_node):
    sender, recipient = await connect_pair(api_node)
    await send_raw(sender, f'{{"type":"send","to":"{RECIPIENT}","data":1.0,"d\\u0061ta":2.50}}')
    assert_same_text(await received_data(recipient), "2.50")
    await api_post(api_node, '{"data":1.0,"x":{"data":3},"\\u0064ata":[1e400]}')
    assert_same_text(await received_data(recipient), "[1e400]")


async def first_message_id(node):
    return (await api_post(node, '{"data":1}')).json()["id"]


async def test_restart_with_same_node_id_does_not_reuse_ids(start_node):
    opts = (f"--server.api-key={KEY}", "--cluster.node-id=fidelity-node")
    first = start_node(*opts)
    before = await first_message_id(first)
    await in_thread(first.close)
    again = start_node(*opts)
    after = await first_message_id(again)
    assert before.startswith("fidelity-node-") and after.startswith("fidelity-node-")
    assert before != after, f"the restarted node reused the message id {before!r}"
