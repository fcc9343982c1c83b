"""SPEC section 1 (process), standalone mode: startup line, options, --help,
bad configuration (exit 2, reason last on stderr), SIGTERM/SIGINT shutdown."""

import asyncio
import os
import signal
import socket
import tempfile
import time

import pytest

from hubnode_testing import (Client, HOST, LINE_RE, REPO, RawWS, get_json, http, in_thread,
                             last_line, port_free, run_once, tail, upgrade)

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


def test_startup_line_exact(node):
    assert LINE_RE.match(node.line), f"line {node.line!r}"
    assert node.host == "127.0.0.1", "host in the listening line"
    assert 0 < node.port < 65536, f"port {node.port}"
    assert node.node, "empty node id"
    # the port it names really is the one it listens on
    r = http(node, "GET", "/healthz")
    assert r.status == 200, "GET /healthz on the announced port"
    # nothing else on stdout so far
    assert node.stdout_text() == node.line + "\n", "stdout"


def test_port_zero_gives_distinct_free_ports(start_node):
    a = start_node()
    b = start_node()
    assert a.port != b.port, f"two nodes with port 0 got the same port {a.port}"
    assert a.port != 8080 or b.port != 8080, "port 0 did not pick a free port"
    assert http(a, "GET", "/healthz").status == 200, "node a"
    assert http(b, "GET", "/healthz").status == 200, "node b"


def test_generated_node_id_is_hostname_pid_random(start_node):
    a = start_node()
    b = start_node()
    host = socket.gethostname()
    for n in (a, b):
        assert (n.node.startswith(f"{host}-{n.pid}-") and
                len(n.node) > len(f"{host}-{n.pid}-")), (
            f"generated node id {n.node!r} is not hostname-pid-random "
            f"(hostname {host!r}, pid {n.pid})")
    assert a.node != b.node, "two nodes generated the same node id"


async def test_node_id_option_used_everywhere(start_node):
    n = start_node("--cluster.node-id=itest-node-1")
    assert n.node == "itest-node-1", "node= in the listening line"
    h = await in_thread(get_json, n, "/healthz")
    assert h.get("node") == "itest-node-1", "/healthz node"
    c = await Client.connect(n, 5)
    assert c.welcome.get("node") == "itest-node-1", "welcome node"
    await c.close()


def test_server_host_option(start_node):
    n = start_node("--server.host=127.0.0.2")
    assert n.host == "127.0.0.2", "HOST in the listening line"
    assert http(n, "GET", "/healthz").status == 200, "GET /healthz on 127.0.0.2"


def test_no_arguments_standalone_on_8080(start_node):
    if not port_free(8080):
        pytest.skip("127.0.0.1:8080 is in use on this machine")
    n = start_node(args=[])
    assert n.host == "127.0.0.1", "default host"
    assert n.port == 8080, "default port"
    h = get_json(n, "/healthz")
    assert h.get("presence") == "memory", "default presence"
    assert h.get("redis") == "off", "default redis"


def test_config_file_and_command_line_override(start_node, tmp_path):
    path = tmp_path / "hubnode.conf"
    path.write_text('[server]\nport=0\nmax-connections-per-user=1\n'
                    '[cluster]\nnode-id="from-file"\n')
    n = start_node(args=[f"--config-file={path}"])
    assert n.node == "from-file", "node id from the config file"
    # max-connections-per-user=1 from the file is in force
    r1, s1, _ = upgrade(n, 3)
    assert r1.status == 101, "first connection of user 3"
    r2, _, _ = upgrade(n, 3)
    assert r2.status == 429, "second connection of user 3 with per-user cap 1 from file"
    s1.close()
    n.close()
    n = start_node(args=[f"--config-file={path}", "--cluster.node-id=from-cli"])
    assert n.node == "from-cli", "command line overrides the file"


def test_help_lists_every_option():
    rc, out, err = run_once(["--help"], timeout=10)
    assert rc is not None, "--help did not exit within 10s"
    assert rc == 0, "--help exit status"
    text = out + err
    missing = [k for k in OPTION_KEYS if k not in text]
    assert not missing, f"--help does not list {missing}; output:\n{tail(text, 40)}"
    assert "listening" not in text, "--help started the node"


async def test_io_threads_option(start_node):
    n = start_node("--server.io-threads=4")
    a = await Client.connect(n, 1)
    bs = [await Client.connect(n, u) for u in range(2, 10)]
    for b in bs:
        await a.send_msg(b.user, {"to": b.user}, ref=b.user)
    for b in bs:
        m = await b.expect("message")
        assert m.get("data") == {"to": b.user}, "delivery with io-threads=4"
    for c in [a] + bs:
        await c.close()


def test_cluster_options_accepted_standalone(start_node):
    # redis.url empty = standalone; the other cluster keys are accepted
    n = start_node("--redis.key-prefix=itest:", "--cluster.heartbeat-interval=1s",
                   "--cluster.node-ttl=5s")
    h = get_json(n, "/healthz")
    assert h.get("presence") == "memory", "presence"
    assert h.get("redis") == "off", "redis"


def test_caf_options_accepted(start_node, tmp_path):
    # SPEC 1: CAF's own logger.* and scheduler.* options work
    log = tmp_path / "hubnode.log"
    n = start_node("--scheduler.max-threads=2", f"--logger.file-name={log}",
                   "--logger.file-verbosity=info")
    assert http(n, "GET", "/healthz").status == 200, "healthz with CAF options"
    n.close()
    assert log.exists() and log.stat().st_size > 0, (
        f"--logger.file-name={log} with file-verbosity=info wrote no log file")


# ---------------------------------------------------------------- bad configuration


def bad_config(args, keywords):
    rc, out, err = run_once(args, timeout=10)
    assert rc is not None, f"{args}: still running after 10s (should exit 2 at start)"
    assert rc == 2, f"exit status for {args} (stderr tail: {tail(err, 5)!r})"
    assert "hubnode listening" not in out, f"{args}: printed the listening line"
    assert out == "", f"stdout for {args}"
    last = last_line(err)
    assert last, f"{args}: stderr is empty, no reason given"
    assert any(k.lower() in last.lower() for k in keywords), (
        f"{args}: last stderr line {last!r} does not name the reason "
        f"(expected one of {keywords})")


def test_bad_unknown_option():
    bad_config(["--server.port=0", "--server.bogus-key=1"], ["server.bogus-key", "bogus"])


def test_bad_unknown_plain_option():
    bad_config(["--server.port=0", "--frobnicate"], ["frobnicate"])


def test_bad_unknown_key_in_config_file():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bad.conf")
        with open(path, "w") as f:
            f.write("[server]\nport=0\nmax-conections=5\n")
        bad_config([f"--config-file={path}"], ["max-conections"])


def test_bad_unparsable_values_in_config_file():
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
    assert not problems, "; ".join(problems)


def test_sample_config_starts(start_node):
    sample = str(REPO / "conf" / "hubnode.ini")
    if not os.path.exists(sample):
        pytest.fail(f"no sample config at {sample} (SPEC 1: samples in conf/)")
    n = start_node(args=[f"--config-file={sample}", "--server.port=0"])
    h = get_json(n, "/healthz")
    assert (h.get("presence"), h.get("redis")) == ("memory", "off"), "sample config mode"


def test_bad_unparsable_port():
    bad_config(["--server.port=abc"], ["server.port", "abc"])


def test_bad_port_out_of_range():
    bad_config(["--server.port=70000"], ["server.port", "70000"])


def test_bad_unparsable_duration():
    bad_config(["--server.port=0", "--hub.ping-interval=soon"], ["hub.ping-interval", "soon"])


def test_bad_unparsable_number():
    bad_config(["--server.port=0", "--hub.rate-limit=lots"], ["hub.rate-limit", "lots"])


def test_bad_scheduler_policy():
    # CAF's 'testing' policy never runs an actor by itself: the node would hang
    bad_config(["--server.port=0", "--scheduler.policy=testing"],
               ["scheduler.policy", "testing"])


def test_bad_auth_mode():
    bad_config(["--server.port=0", "--auth.mode=bogus"], ["auth.mode", "bogus"])


def test_bad_jwt_without_secret():
    bad_config(["--server.port=0", "--auth.mode=jwt"], ["jwt-secret", "secret"])


def test_bad_port_in_use():
    s = socket.socket()
    s.bind((HOST, 0))
    s.listen(5)
    port = s.getsockname()[1]
    try:
        bad_config([f"--server.port={port}"], [str(port), "in use"])
    finally:
        s.close()


def test_bad_unusable_host():
    bad_config(["--server.port=0", "--server.host=256.0.0.1"], ["server.host", "256.0.0.1"])


def test_bad_missing_config_file():
    bad_config(["--server.port=0", "--config-file=/nonexistent/hubnode.ini"],
               ["/nonexistent/hubnode.ini"])


def test_bad_redis_url():
    bad_config(["--server.port=0", "--redis.url=notaurl"], ["redis.url", "notaurl"])


def test_bad_redis_url_wrong_scheme():
    bad_config(["--server.port=0", "--redis.url=http://127.0.0.1:6379"],
               ["redis.url", "http://127.0.0.1:6379"])


# ---------------------------------------------------------------- shutdown


async def shutdown_with_clients(start_node, sig, *args):
    """The node's exit status, stdout and stderr are checked at teardown."""
    n = start_node("--server.shutdown-timeout=2s", *args)
    clients = [await Client.connect(n, u) for u in (1, 1, 2)]
    await clients[0].send_msg("2", {"n": 1}, ref="r1")
    m = await clients[2].expect("message")
    assert m.get("data") == {"n": 1}, f"delivery before the signal {args}"
    t0 = time.monotonic()
    n.signal(sig)
    codes = await asyncio.gather(*(c.wait_closed(3.5) for c in clients),
                                 return_exceptions=True)
    for i, code in enumerate(codes):
        if isinstance(code, BaseException):
            pytest.fail(f"client {i}: {code}")
        assert code == 1001, f"close code received by client {i}"

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
    assert st != 101, "a new WebSocket upgrade was accepted after the signal"
    rc = await in_thread(n.wait_exit, max(0.1, 2.0 + 1.5 - (time.monotonic() - t0)))
    assert rc is not None, "node still running 3.5s after the signal (shutdown-timeout 2s)"
    assert rc == 0, "exit status after the signal"


async def test_sigterm_closes_clients_1001_and_exits_0(start_node):
    await shutdown_with_clients(start_node, signal.SIGTERM)


async def test_sigint_closes_clients_1001_and_exits_0(start_node):
    await shutdown_with_clients(start_node, signal.SIGINT)


async def test_caf_scheduler_policies_serve_and_shut_down(start_node):
    # hubnode's default scheduler.policy 'io' runs the actors on the io
    # threads; CAF's own schedulers still run the whole node
    for policy in ("stealing", "sharing"):
        await shutdown_with_clients(start_node, signal.SIGTERM, f"--scheduler.policy={policy}")


async def test_sigterm_many_clients_and_a_flood(start_node):
    # 150 connections, one of them flooding, when SIGTERM arrives
    n = start_node("--server.shutdown-timeout=3s", "--hub.rate-limit=100000")
    clients = await asyncio.gather(*(Client.connect(n, 1 + i % 50) for i in range(150)))
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
        except Exception:  # noqa: BLE001 - the node closed it: the flood is over
            pass
    ft = asyncio.create_task(flood())
    await asyncio.sleep(0.3)  # the flood is under way when SIGTERM arrives
    t0 = time.monotonic()
    n.signal(signal.SIGTERM)
    codes = await asyncio.gather(*(c.wait_closed(5) for c in clients[1:]),
                                 return_exceptions=True)
    stop = True
    await asyncio.wait_for(ft, 5)
    bad = [(i, c) for i, c in enumerate(codes, 1) if c != 1001]
    assert not bad, f"{len(bad)} of {len(codes)} clients did not get 1001: {bad[:5]}"
    rc = await in_thread(n.wait_exit, max(0.1, 3.0 + 1.5 - (time.monotonic() - t0)))
    assert rc is not None, "node still running 4.5s after SIGTERM (shutdown-timeout 3s)"
    assert rc == 0, "exit status"


def test_sigterm_idle_node_exits_0_quickly(node):
    t0 = time.monotonic()
    node.signal(signal.SIGTERM)
    rc = node.wait_exit(5 + 1)
    assert rc is not None, "idle node still running 6s after SIGTERM (shutdown-timeout 5s)"
    assert rc == 0, "exit status"
    assert time.monotonic() - t0 < 6, "too slow"


def test_sigterm_with_unresponsive_peers_exits_within_shutdown_timeout(start_node):
    # a WebSocket client that never reads (and so never answers the close),
    # a client whose receive buffer is full, and a half-sent HTTP request
    n = start_node("--server.shutdown-timeout=1s", "--server.handshake-timeout=30s",
                   "--hub.rate-limit=100000")
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
        time.sleep(0.2)  # the node is writing to the mute client when SIGTERM arrives
        n.signal(signal.SIGTERM)
        rc = n.wait_exit(1.0 + 1.5)
        assert rc is not None, ("node still running 2.5s after SIGTERM with "
                                "shutdown-timeout 1s and unresponsive peers")
        assert rc == 0, "exit status"
    finally:
        for s in socks:
            s.close()


async def test_stdout_only_the_listening_line_after_traffic(start_node):
    n = start_node("--server.api-key=k", "--hub.rate-limit=3")
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
    # stop() reports a stdout of more than the listening line too; this
    # assertion says it first, and shows the whole stdout
    problems = await in_thread(n.stop)
    assert n.stdout_text() == n.line + "\n", "whole stdout"
    assert not problems, "; ".join(problems)


def test_userid_mode_logs_a_warning_at_start(start_node):
    # SPEC 2: "The node logs a warning at start that this mode trusts the
    # client." Console logging is CAF's; turn it on explicitly.
    try:
        n = start_node("--logger.console=uncolored", "--logger.console-verbosity=warning")
    except AssertionError as e:
        pytest.fail(f"node did not start with CAF console logger options: {e}")
    ok = n.err.wait_for(lambda b: b"trust" in b.lower() or b"userid" in b.lower(), 3)
    assert ok, (f"no start warning about auth.mode=userid on stderr; stderr:\n"
                f"{tail(n.stderr_text())}")

