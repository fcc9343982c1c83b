#!/usr/bin/python3
"""What kept history costs in cluster mode (SPEC section 8).

Starts a redis-server and one cluster node on free loopback ports, sends
USERS x ENTRIES direct messages (to users with no connection, so every
message is only kept), and prints one JSON object: Redis used_memory and
node RSS before and after, per kept entry, and the same entries measured
as a Redis STREAM per stream (the layout not chosen: XRANGE by entry id =
offset would need no arithmetic) from a sample of streams.

    bench/stream_memory.py build/hubnode [--users=10000] [--entries=64]
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import redis
import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


async def send_all(port, users, entries, base):
    """One connection per 1,000 users, each sending its users' messages in
    order; an ack per message bounds what is in flight."""
    async def sender(first, count):
        uri = f"ws://127.0.0.1:{port}/ws?userId={base - 1 - first}"
        async with websockets.connect(uri, max_queue=None) as ws:
            await ws.recv()  # welcome
            for n in range(entries):
                for u in range(first, first + count):
                    await ws.send(json.dumps({"type": "send", "to": str(base + u),
                                              "data": {"n": n, "text": "hello"}}))
                acked = 0
                while acked < count:
                    if json.loads(await ws.recv()).get("type") == "ack":
                        acked += 1

    step = 1000
    await asyncio.gather(*(sender(f, min(step, users - f)) for f in range(0, users, step)))


def stream_layout_bytes(r, prefix, base, sample):
    """Copies the entries of `sample` LISTs into STREAMs and measures both."""
    list_bytes = stream_bytes = count = 0
    for u in range(sample):
        log = f"{prefix}{{u:{base + u}}}:log"
        frames = r.lrange(log, 0, -1)
        scratch = f"scratch:stream:{u}"
        for offset, frame in enumerate(frames, 1):
            r.xadd(scratch, {"f": frame}, id=f"{offset}-0")
        list_bytes += r.memory_usage(log, samples=0)
        stream_bytes += r.memory_usage(scratch, samples=0)
        count += len(frames)
        r.delete(scratch)
    return list_bytes / count, stream_bytes / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hubnode")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--entries", type=int, default=64)
    args = ap.parse_args()
    rport, nport = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="hubnode-memory-")
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL)
    node = None
    try:
        wait_port(rport, time.monotonic() + 10)
        node = subprocess.Popen(
            [args.hubnode, f"--server.port={nport}", "--server.host=127.0.0.1",
             f"--redis.url=redis://127.0.0.1:{rport}", "--cluster.node-id=mem",
             f"--history.user-size={args.entries}", "--hub.rate-limit=1000000"],
            stdout=subprocess.DEVNULL)
        wait_port(nport, time.monotonic() + 10)
        r = redis.Redis(port=rport)
        time.sleep(0.5)  # the node's own keys (heartbeat, presence) settle
        before_redis = r.info("memory")["used_memory"]
        before_rss = rss_kb(node.pid)
        base = 10_000_000
        started = time.monotonic()
        asyncio.run(send_all(nport, args.users, args.entries, base))
        seconds = time.monotonic() - started
        after_redis = r.info("memory")["used_memory"]
        after_rss = rss_kb(node.pid)
        kept = args.users * args.entries
        list_entry, stream_entry = stream_layout_bytes(r, "hubnode:", base, 100)
        print(json.dumps({
            "users": args.users, "entries_per_user": args.entries, "kept": kept,
            "send_seconds": round(seconds, 1),
            "redis_used_memory_delta": after_redis - before_redis,
            "redis_bytes_per_entry": round((after_redis - before_redis) / kept, 1),
            "node_rss_delta_kb": after_rss - before_rss,
            "node_bytes_per_entry": round((after_rss - before_rss) * 1024 / kept, 1),
            "sample_stream_key_bytes_per_entry": round(stream_entry, 1),
            "sample_list_key_bytes_per_entry": round(list_entry, 1),
            "frame_bytes": len(r.lindex(f"hubnode:{{u:{base}}}:log", 0)),
        }, indent=1))
    finally:
        for p in (node, redis_proc):
            if p:
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    sys.exit(main())
