"""SPEC section 1 (process), standalone mode: startup line, options, --help,
bad configuration (exit 2, reason last on stderr), SIGTERM/SIGINT shutdown."""

import asyncio
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, HOST, LINE_RE, Client, Node, RawWS, Skip, case, check,  # noqa: E402
                     eq, fail, get_json, http, in_thread, last_line, main, port_free,
                     run_once, tail, upgrade)

OPTION_KEYS = [
    "server.host", "server.port", "server.io-threads", "server.max-message-size",
    "server.max-connections", "server.max-connections-per-user",
    "server.handshake-timeout", "server.shutdown-timeout", "server.allowed-origins",
    "server.api-key", "auth.mode", "auth.jwt-secret", "hub.ping-interval",
    "hub.idle-timeout", "hub.sweep-interval", "hub.send-queue-limit", "hub.rate-limit",
    "presence.grace-period", "redis.url", "redis.key-prefix", "cluster.node-id",
    "cluster.heartbeat-interval", "cluster.node-ttl",
]


# ---------------------------------------------------------------- startup


@case
def startup_line_exact():
    with Node() as n:
        check(LINE_RE.match(n.line), f"line {n.line!r}")
        eq(n.host, "127.0.0.1", "host in the listening line")
        check(0 < n.port < 65536, f"port {n.port}")
        check(n.node, "empty node id")
        # the port it names really is the one it listens on
        r = http(n, "GET", "/healthz")
        eq(r.status, 200, "GET /healthz on the announced port")
        # nothing else on stdout so far
        eq(n.stdout_text(), n.line + "\n", "stdout")


@case
def port_zero_gives_distinct_free_ports():
    with Node() as a, Node() as b:
        check(a.port != b.port, f"two nodes with port 0 got the same port {a.port}")
        check(a.port != 8080 or b.port != 8080, "port 0 did not pick a free port")
        eq(http(a, "GET", "/healthz").status, 200, "node a")
        eq(http(b, "GET", "/healthz").status, 200, "node b")


@case
def generated_node_id_is_hostname_pid_random():
    with Node() as a, Node() as b:
        host = socket.gethostname()
        for n in (a, b):
            check(n.node.startswith(f"{host}-{n.pid}-") and
                  len(n.node) > len(f"{host}-{n.pid}-"),
                  f"generated node id {n.node!r} is not hostname-pid-random "
                  f"(hostname {host!r}, pid {n.pid})")
        check(a.node != b.node, "two nodes generated the same node id")


@case
def node_id_option_used_everywhere():
    async def body():
        async with Node("--cluster.node-id=itest-node-1") as n:
            eq(n.node, "itest-node-1", "node= in the listening line")
            h = await in_thread(get_json, n, "/healthz")
            eq(h.get("node"), "itest-node-1", "/healthz node")
            c = await Client.connect(n, 5)
            eq(c.welcome.get("node"), "itest-node-1", "welcome node")
            await c.close()
    asyncio.run(body())


@case
def server_host_option():
    with Node("--server.host=127.0.0.2") as n:
        eq(n.host, "127.0.0.2", "HOST in the listening line")
        eq(http(n, "GET", "/healthz").status, 200, "GET /healthz on 127.0.0.2")


@case
def no_arguments_standalone_on_8080():
    if not port_free(8080):
        raise Skip("127.0.0.1:8080 is in use on this machine")
    with Node(args=[]) as n:
        eq(n.host, "127.0.0.1", "default host")
        eq(n.port, 8080, "default port")
        h = get_json(n, "/healthz")
        eq(h.get("presence"), "memory", "default presence")
        eq(h.get("redis"), "off", "default redis")


@case
def config_file_and_command_line_override():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "hubnode.conf")
        with open(path, "w") as f:
            f.write('[server]\nport=0\nmax-connections-per-user=1\n'
                    '[cluster]\nnode-id="from-file"\n')
        with Node(args=[f"--config-file={path}"]) as n:
            eq(n.node, "from-file", "node id from the config file")
            # max-connections-per-user=1 from the file is in force
            r1, s1, _ = upgrade(n, 3)
            eq(r1.status, 101, "first connection of user 3")
            r2, _, _ = upgrade(n, 3)
            eq(r2.status, 429, "second connection of user 3 with per-user cap 1 from file")
            s1.close()
        with Node(args=[f"--config-file={path}", "--cluster.node-id=from-cli"]) as n:
            eq(n.node, "from-cli", "command line overrides the file")


@case
def help_lists_every_option():
    rc, out, err = run_once(["--help"], timeout=10)
    check(rc is not None, "--help did not exit within 10s")
    eq(rc, 0, "--help exit status")
    text = out + err
    missing = [k for k in OPTION_KEYS if k not in text]
    check(not missing, f"--help does not list {missing}; output:\n{tail(text, 40)}")
    check("listening" not in text, "--help started the node")


@case
def io_threads_option():
    async def body():
        async with Node("--server.io-threads=4") as n:
            a = await Client.connect(n, 1)
            bs = [await Client.connect(n, u) for u in range(2, 10)]
            for b in bs:
                await a.send_msg(b.user, {"to": b.user}, ref=b.user)
            for b in bs:
                m = await b.expect("message")
                eq(m.get("data"), {"to": b.user}, "delivery with io-threads=4")
            for c in [a] + bs:
                await c.close()
    asyncio.run(body())


@case
def cluster_options_accepted_standalone():
    # redis.url empty = standalone; the other cluster keys are accepted
    with Node("--redis.key-prefix=itest:", "--cluster.heartbeat-interval=1s",
              "--cluster.node-ttl=5s") as n:
        h = get_json(n, "/healthz")
        eq(h.get("presence"), "memory", "presence")
        eq(h.get("redis"), "off", "redis")


@case
def caf_options_accepted():
    # SPEC 1: CAF's own logger.* and scheduler.* options work
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "hubnode.log")
        with Node("--scheduler.max-threads=2", f"--logger.file-name={log}",
                  "--logger.file-verbosity=info") as n:
            eq(http(n, "GET", "/healthz").status, 200, "healthz with CAF options")
        check(os.path.exists(log) and os.path.getsize(log) > 0,
              f"--logger.file-name={log} with file-verbosity=info wrote no log file")


# ---------------------------------------------------------------- bad configuration


def bad_config(args, keywords):
    rc, out, err = run_once(args, timeout=10)
    check(rc is not None, f"{args}: still running after 10s (should exit 2 at start)")
    eq(rc, 2, f"exit status for {args} (stderr tail: {tail(err, 5)!r})")
    check("hubnode listening" not in out, f"{args}: printed the listening line")
    eq(out, "", f"stdout for {args}")
    last = last_line(err)
    check(last, f"{args}: stderr is empty, no reason given")
    check(any(k.lower() in last.lower() for k in keywords),
          f"{args}: last stderr line {last!r} does not name the reason "
          f"(expected one of {keywords})")


@case
def bad_unknown_option():
    bad_config(["--server.port=0", "--server.bogus-key=1"], ["server.bogus-key", "bogus"])


@case
def bad_unknown_plain_option():
    bad_config(["--server.port=0", "--frobnicate"], ["frobnicate"])


@case
def bad_unknown_key_in_config_file():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bad.conf")
        with open(path, "w") as f:
            f.write("[server]\nport=0\nmax-conections=5\n")
        bad_config([f"--config-file={path}"], ["max-conections"])


@case
def bad_unparsable_values_in_config_file():
    # SPEC 1: an unparsable value is bad configuration, from a file too
    problems = []
    for section, line, keys in (("hub", 'rate-limit="lots"', ["hub.rate-limit", "rate-limit"]),
                                ("hub", "ping-interval=soon", ["hub.ping-interval",
                                                               "ping-interval"]),
                                ("server", 'port="80"', ["server.port", "port"])):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.conf")
            with open(path, "w") as f:
                f.write(f"[{section}]\n{line}\n")
            args = [f"--config-file={path}"] + (["--server.port=0"] if "port" not in line
                                                 else [])
            try:
                # the reason names the key, or (a syntax error) the file
                bad_config(args, keys + [path])
            except AssertionError as e:
                problems.append(f"[{section}] {line}: {e}")
    check(not problems, "; ".join(problems))


@case
def sample_config_starts():
    sample = os.path.join(os.path.dirname(BIN), "..", "conf", "hubnode.ini")
    from harness import REPO
    sample = str(REPO / "conf" / "hubnode.ini")
    if not os.path.exists(sample):
        fail(f"no sample config at {sample} (SPEC 1: samples in conf/)")
    with Node(args=[f"--config-file={sample}", "--server.port=0"]) as n:
        h = get_json(n, "/healthz")
        eq((h.get("presence"), h.get("redis")), ("memory", "off"), "sample config mode")


@case
def bad_unparsable_port():
    bad_config(["--server.port=abc"], ["server.port", "abc"])


@case
def bad_port_out_of_range():
    bad_config(["--server.port=70000"], ["server.port", "70000"])


@case
def bad_unparsable_duration():
    bad_config(["--server.port=0", "--hub.ping-interval=soon"], ["hub.ping-interval", "soon"])


@case
def bad_unparsable_number():
    bad_config(["--server.port=0", "--hub.rate-limit=lots"], ["hub.rate-limit", "lots"])


@case
def bad_scheduler_policy():
    # CAF's 'testing' policy never runs an actor by itself: the node would hang
    bad_config(["--server.port=0", "--scheduler.policy=testing"],
               ["scheduler.policy", "testing"])


@case
def bad_auth_mode():
    bad_config(["--server.port=0", "--auth.mode=bogus"], ["auth.mode", "bogus"])


@case
def bad_jwt_without_secret():
    bad_config(["--server.port=0", "--auth.mode=jwt"], ["jwt-secret", "secret"])


@case
def bad_port_in_use():
    s = socket.socket()
    s.bind((HOST, 0))
    s.listen(5)
    port = s.getsockname()[1]
    try:
        bad_config([f"--server.port={port}"], [str(port), "in use"])
    finally:
        s.close()


@case
def bad_unusable_host():
    bad_config(["--server.port=0", "--server.host=256.0.0.1"], ["server.host", "256.0.0.1"])


@case
def bad_missing_config_file():
    bad_config(["--server.port=0", "--config-file=/nonexistent/hubnode.ini"],
               ["/nonexistent/hubnode.ini"])


@case
def bad_redis_url():
    bad_config(["--server.port=0", "--redis.url=notaurl"], ["redis.url", "notaurl"])


@case
def bad_redis_url_wrong_scheme():
    bad_config(["--server.port=0", "--redis.url=http://127.0.0.1:6379"],
               ["redis.url", "http://127.0.0.1:6379"])


# ---------------------------------------------------------------- shutdown


async def shutdown_with_clients(sig, *args):
    n = Node("--server.shutdown-timeout=2s", *args)
    await in_thread(n.start)
    try:
        clients = [await Client.connect(n, u) for u in (1, 1, 2)]
        await clients[0].send_msg("2", {"n": 1}, ref="r1")
        m = await clients[2].expect("message")
        eq(m.get("data"), {"n": 1}, f"delivery before the signal {args}")
        t0 = time.monotonic()
        n.signal(sig)
        codes = await asyncio.gather(*(c.wait_closed(3.5) for c in clients),
                                     return_exceptions=True)
        for i, code in enumerate(codes):
            if isinstance(code, BaseException):
                fail(f"client {i}: {code}")
            eq(code, 1001, f"close code received by client {i}")
        # it stopped accepting: no new WebSocket session is opened
        def try_new():
            try:
                r, s, _ = upgrade(n, 3, timeout=2)
            except (OSError, EOFError, TimeoutError):
                return None
            if s:
                s.close()
            return r.status
        st = await in_thread(try_new)
        check(st != 101, "a new WebSocket upgrade was accepted after the signal")
        rc = await in_thread(n.wait_exit, max(0.1, 2.0 + 1.5 - (time.monotonic() - t0)))
        check(rc is not None, "node still running 3.5s after the signal "
              "(shutdown-timeout 2s)")
        eq(rc, 0, "exit status after the signal")
    finally:
        problems = await in_thread(n.stop)
        check(not problems, "; ".join(problems))


@case
def sigterm_closes_clients_1001_and_exits_0():
    asyncio.run(shutdown_with_clients(signal.SIGTERM))


@case
def sigint_closes_clients_1001_and_exits_0():
    asyncio.run(shutdown_with_clients(signal.SIGINT))


@case
def caf_scheduler_policies_serve_and_shut_down():
    # hubnode's default scheduler.policy 'io' runs the actors on the io
    # threads; CAF's own schedulers still run the whole node
    for policy in ("stealing", "sharing"):
        asyncio.run(shutdown_with_clients(signal.SIGTERM, f"--scheduler.policy={policy}"))


@case
def sigterm_many_clients_and_a_flood():
    # 150 connections, one of them flooding, when SIGTERM arrives
    async def body():
        n = Node("--server.shutdown-timeout=3s", "--hub.rate-limit=100000")
        await in_thread(n.start)
        try:
            clients = await asyncio.gather(*(Client.connect(n, 1 + i % 50)
                                             for i in range(150)))
            flooder = clients[0]
            stop = False

            async def flood():
                i = 0
                try:
                    while not stop and i < 20000:
                        await flooder.send({"type": "send", "to": "2", "data": "f" * 200})
                        i += 1
                        if i % 10 == 0:
                            await asyncio.sleep(0.001)
                except Exception:
                    pass
            ft = asyncio.create_task(flood())
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            n.signal(signal.SIGTERM)
            codes = await asyncio.gather(*(c.wait_closed(5) for c in clients[1:]),
                                         return_exceptions=True)
            stop = True
            await asyncio.wait_for(ft, 5)
            bad = [(i, c) for i, c in enumerate(codes, 1) if c != 1001]
            check(not bad, f"{len(bad)} of {len(codes)} clients did not get 1001: {bad[:5]}")
            rc = await in_thread(n.wait_exit, max(0.1, 3.0 + 1.5 - (time.monotonic() - t0)))
            check(rc is not None, "node still running 4.5s after SIGTERM (shutdown-timeout 3s)")
            eq(rc, 0, "exit status")
        finally:
            problems = await in_thread(n.stop)
        check(not problems, "; ".join(problems))
    asyncio.run(body())


@case
def sigterm_idle_node_exits_0_quickly():
    n = Node()
    n.start()
    try:
        t0 = time.monotonic()
        n.signal(signal.SIGTERM)
        rc = n.wait_exit(5 + 1)
        check(rc is not None, "idle node still running 6s after SIGTERM "
              "(shutdown-timeout 5s)")
        eq(rc, 0, "exit status")
        check(time.monotonic() - t0 < 6, "too slow")
    finally:
        problems = n.stop()
        check(not problems, "; ".join(problems))


@case
def sigterm_with_unresponsive_peers_exits_within_shutdown_timeout():
    # a WebSocket client that never reads (and so never answers the close),
    # a client whose receive buffer is full, and a half-sent HTTP request
    n = Node("--server.shutdown-timeout=1s", "--server.handshake-timeout=30s",
             "--hub.rate-limit=100000")
    n.start()
    socks = []
    try:
        mute = RawWS.connect(n, 11, rcvbuf=4096)
        socks.append(mute)
        half = socket.create_connection((n.host, n.port))
        half.sendall(b"GET /ws?userId=12 HTTP/1.1\r\nHost: x\r\n")
        socks.append(half)
        # fill the mute client's buffers a little through a raw sender
        sender = RawWS.connect(n, 13)
        socks.append(sender)
        sender.recv_json(3)  # welcome
        for i in range(200):
            sender.send_json({"type": "send", "to": "11", "data": "y" * 4000})
        time.sleep(0.2)
        t0 = time.monotonic()
        n.signal(signal.SIGTERM)
        rc = n.wait_exit(1.0 + 1.5)
        check(rc is not None, "node still running 2.5s after SIGTERM with "
              "shutdown-timeout 1s and unresponsive peers")
        eq(rc, 0, "exit status")
        _ = t0
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        problems = n.stop()
        check(not problems, "; ".join(problems))


@case
def stdout_only_the_listening_line_after_traffic():
    async def body():
        n = Node("--server.api-key=k", "--hub.rate-limit=3")
        await in_thread(n.start)
        try:
            a = await Client.connect(n, 1)
            b = await Client.connect(n, 2)
            for i in range(20):  # acks, rate_limited errors
                await a.send_msg("2", {"i": i}, ref=str(i))
            await a.send("not json")
            await a.send({"type": "nope"})
            await in_thread(http, n, "GET", "/metrics")
            await in_thread(http, n, "GET", "/nope")
            await in_thread(http, n, "POST", "/api/users/2/messages",
                            {"Authorization": "Bearer k"}, {"data": 1})
            await in_thread(upgrade, n, "abc")
            await asyncio.sleep(1.2)  # tokens back (rate-limit 3/s) for the barrier ping
            await a.barrier(5)
            await b.close()
            await a.close()
        finally:
            problems = await in_thread(n.stop)
        eq(n.stdout_text(), n.line + "\n", "whole stdout")
        check(not problems, "; ".join(problems))
    asyncio.run(body())


@case
def userid_mode_logs_a_warning_at_start():
    # SPEC 2: "The node logs a warning at start that this mode trusts the
    # client." Console logging is CAF's; turn it on explicitly.
    n = Node("--logger.console=uncolored", "--logger.console-verbosity=warning")
    try:
        n.start()
    except AssertionError as e:
        fail(f"node did not start with CAF console logger options: {e}")
    try:
        ok = n.err.wait_for(lambda b: b"trust" in b.lower() or b"userid" in b.lower(), 3)
        check(ok, f"no start warning about auth.mode=userid on stderr; stderr:\n"
              f"{tail(n.stderr_text())}")
    finally:
        problems = n.stop()
    check(not problems, "; ".join(problems))


if __name__ == "__main__":
    main()
