"""RFC 6455 framing rules of the node's own frame layer, over raw sockets:
close codes for protocol violations, fragments, pings, the close handshake,
frames split across TCP segments."""

import json
import os
import socket
import struct
import time

import pytest

from hubnode_testing import (OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS, in_thread,
                             poll_metric)


async def raw_session(n, fn):
    """fn(r) on a fresh raw connection of user 1 past its welcome, off the
    event loop; returns what fn returns."""

    def run():
        r = RawWS.connect(n, 1)
        try:
            r.recv_json(3)
            return fn(r)
        finally:
            r.close()
    return await in_thread(run)


def ends_with(r, what, code):
    """The node closes `r` with `code`, then ends the TCP connection."""
    try:
        assert r.wait_end(3) == ("close", code), what
        assert r.wait_end(3) == ("eof", None), f"{what}: after the close frame"
    except TimeoutError:
        pytest.fail(f"{what}: connection still open")


def text_to_self(text):
    return json.dumps({"type": "send", "to": "1", "data": text}, ensure_ascii=False).encode()


def masked_text_frame(payload):
    """One whole masked text frame (length below 64 KiB) as bytes."""
    key = os.urandom(4)
    head = struct.pack("!BB", 0x80 | OP_TEXT, 0x80 | len(payload)) if len(payload) < 126 \
        else struct.pack("!BBH", 0x80 | OP_TEXT, 0x80 | 126, len(payload))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def delivered(r, timeout=3):
    """The `message` frame among the next two (ack and message)."""
    got = [r.recv_json(timeout), r.recv_json(timeout)]
    msgs = [m for m in got if isinstance(m, dict) and m.get("type") == "message"]
    assert len(msgs) == 1, f"expected an ack and a message, got {got!r}"
    return msgs[0]


def fragments(*parts):
    """Sends `parts` as one text message, a fragment each."""

    def send(r):
        for i, part in enumerate(parts):
            r.send_frame(OP_CONT if i else OP_TEXT, part, fin=i == len(parts) - 1)
    return send


# what the client does, and the close code the node answers it with
VIOLATIONS = [
    ("an unmasked client frame",
     lambda r: r.send_frame(OP_TEXT, b'{"type":"ping"}', mask=False), 1002),
    ("RSV1 without an extension", lambda r: r.send_frame(0x40 | OP_TEXT, b"{}"), 1002),
    ("RSV2", lambda r: r.send_frame(0x20 | OP_TEXT, b"{}"), 1002),
    ("RSV3", lambda r: r.send_frame(0x10 | OP_TEXT, b"{}"), 1002),
    ("a reserved data opcode", lambda r: r.send_frame(0x3, b"{}"), 1002),
    ("a reserved control opcode", lambda r: r.send_frame(0xB, b"{}"), 1002),
    ("a 126-byte ping", lambda r: r.send_frame(OP_PING, b"p" * 126), 1002),
    ("a fragmented ping", lambda r: r.send_frame(OP_PING, b"p", fin=False), 1002),
    ("a new message inside a fragmented one",
     lambda r: (r.send_frame(OP_TEXT, b"{", fin=False), r.send_frame(OP_TEXT, b"}")), 1002),
    ("close code 1005 on the wire",
     lambda r: r.send_frame(OP_CLOSE, struct.pack("!H", 1005)), 1002),
    ("a one-byte close payload", lambda r: r.send_frame(OP_CLOSE, b"\x03"), 1002),
    ("overlong UTF-8",
     lambda r: r.send_frame(OP_TEXT, b'{"type":"ping","ref":"\xc0\xaf"}'), 1007),
    ("a code point cut at the end of the message, though valid so far",
     fragments(b'{"type":"ping","ref":"\xf0', b'\x9f"}'), 1007),
]


async def test_violations_close_with_their_code(node):
    for what, send, code in VIOLATIONS:
        await raw_session(node, lambda r: (send(r), ends_with(r, what, code)))


async def test_fragmented_text_delivered_whole(node):
    # one code point (U+1F600) over three fragments
    raw = text_to_self("\U0001F600 joined")
    at = raw.index(b"\xf0")
    m = await raw_session(node, lambda r: (
        fragments(raw[:at + 1], raw[at + 1:at + 3], raw[at + 3:])(r), delivered(r))[1])
    assert m.get("data") == "\U0001F600 joined", "the joined message"


async def test_ping_payload_answered_by_pong(node):
    def run(r):
        for payload in [b"", b"abc", bytes(range(125))]:
            r.send_frame(OP_PING, payload)
            assert r.recv_frame(3) == (True, OP_PONG, payload), "answer to a ping"
    await raw_session(node, run)


async def test_close_handshake_echoes_the_code(node):
    # what the client's close frame carries, and the code that comes back
    closes = [(struct.pack("!H", 4000) + b"bye", 4000), (struct.pack("!H", 1000), 1000),
              (b"", 1000)]  # no code: a normal close
    for payload, code in closes:
        await raw_session(node, lambda r: (r.send_frame(OP_CLOSE, payload),
                                           ends_with(r, f"close {payload!r}", code)))
    await poll_metric(node, lambda v: v >= len(closes), "hubnode_connections_closed_total",
                      reason="client")


async def test_frame_split_across_segments(node):
    # the node keeps the bytes of an incomplete frame between reads
    def run(r):
        r.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frame = masked_text_frame(text_to_self("x" * 300))
        for i in range(0, len(frame), 7):
            r.sock.sendall(frame[i:i + 7])
            time.sleep(0.002)
        return delivered(r)
    m = await raw_session(node, run)
    assert m.get("data") == "x" * 300, "message sent in 7-byte pieces"


async def test_sixty_four_bit_length_accepted(start_node):
    n = start_node("--server.max-message-size=100000", "--hub.send-queue-limit=1000000")
    m = await raw_session(n, lambda r: (r.send_frame(OP_TEXT, text_to_self("y" * 70000)),
                                        delivered(r, 5))[1])
    assert m.get("data") == "y" * 70000, "a 70 KB message"

