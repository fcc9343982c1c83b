"""Shared pieces of hubnode's integration tests (pytest; fixtures in conftest.py).

Drives the real binary over real loopback sockets: standard library,
python3-websockets and python3-redis (Debian's, so run pytest with
/usr/bin/python3).

Pieces:
  Node            one hubnode process: start, signal, stop (stop() checks exit
                  status, stdout and sanitizer reports; close() fails on them)
  run_once        run the binary to completion (bad configuration, --help)
  http            one HTTP/1.1 request over a raw socket, parsed response
  RawWS           a hand-rolled WebSocket client over a raw socket, for what
                  no library sends (bad frames, raw handshakes, slowloris)
  Client          a websockets client that reads the welcome first
  Bystander       a well-behaved pair talking all through a hostile test
  RedisServer     a redis-server of the test's own on a free loopback port
                  (stop/start on the same port, with or without its data)
  Subscriber      redis-py pub/sub in a thread, recording every message
  cluster_args    the options of a cluster-mode node with short timings
  poll_until      wait for a condition (blocking; apoll_until for async)
"""

import asyncio
import base64
import inspect
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import redis
import websockets
import websockets.exceptions

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("HUBNODE_BIN") or str(REPO / "build" / "hubnode")
HOST = "127.0.0.1"
LINE_RE = re.compile(
    r"^hubnode listening on (?P<host>\S+):(?P<port>\d+) node=(?P<node>\S+) "
    r"presence=memory$")
# any presence mode; Node(presence=...) says which one the test expects
LINE_ANY_RE = re.compile(
    r"^hubnode listening on (?P<host>\S+):(?P<port>\d+) node=(?P<node>\S+) "
    r"presence=(?P<presence>memory|redis)$")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# process


class _Drain(threading.Thread):
    """Reads one pipe to EOF into a buffer (so the node never blocks on it)."""

    def __init__(self, pipe, limit=4 << 20):
        super().__init__(daemon=True)
        self.pipe = pipe
        self.limit = limit
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.eof = False

    def run(self):
        fd = self.pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.buf += chunk
                if len(self.buf) > self.limit:  # keep the tail
                    del self.buf[: len(self.buf) - self.limit]
                self.cond.notify_all()

    def wait_for(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(bytes(self.buf)) and not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return pred(bytes(self.buf))

    def text(self):
        with self.cond:
            return bytes(self.buf).decode("utf-8", "replace")

    def join_eof(self, timeout):
        self.join(timeout)


def tail(text, n=15):
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-n:])


# What AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer write to
# stderr when a sanitized build (see meson.build) finds something.
SANITIZER_RE = re.compile(r"^.*(ERROR: (Address|Leak)Sanitizer|runtime error: |"
                          r"SUMMARY: \w+Sanitizer).*$", re.MULTILINE)


def sanitizer_report(text, n=40):
    """The first n lines of a sanitizer report in text, or None."""
    m = SANITIZER_RE.search(text)
    if not m:
        return None
    return "\n".join(text[m.start():].splitlines()[:n])


class Node:
    """One hubnode process listening on a kernel-chosen loopback port.

    n = Node("--hub.ping-interval=200ms").start()
        n.host, n.port, n.node, n.proc
    stop(): SIGTERM, bounded wait (SIGKILL after STOP_TIMEOUT), then checks
    that the node did not die on its own, exited 0 (unless the test killed
    it with SIGKILL), wrote only its one line to stdout and no sanitizer
    report to stderr. Tests get nodes from conftest's fixtures, which close()
    them at teardown.
    """

    def __init__(self, *opts, args=None, start_timeout=START_TIMEOUT, presence="memory"):
        # presence: the mode the listening line must name ("memory" or
        # "redis"; cluster tests use cluster_args() below)
        self.presence = presence
        if args is None:
            args = ["--server.port=0"] + list(opts)
        self.args = [BIN] + list(args)
        self.start_timeout = start_timeout
        self.proc = None
        self.line = None
        self.host = self.port = self.node = None
        self.stop_rc = None
        self.signalled = False
        self.killed = False  # the test sent SIGKILL

    # --- lifecycle
    def start(self):
        if not os.path.exists(BIN):
            raise AssertionError(f"node binary {BIN} does not exist")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = _Drain(self.proc.stdout)
        self.err = _Drain(self.proc.stderr)
        self.out.start()
        self.err.start()
        got = self.out.wait_for(lambda b: b"\n" in b, self.start_timeout)
        if not got:
            rc = self.proc.poll()
            self._kill()
            what = (f"node exited with status {rc} before printing its listening line"
                    if rc is not None else
                    f"node did not print its listening line within {self.start_timeout}s")
            raise AssertionError(f"{what} (args={self.args[1:]}); "
                                 f"stdout={self.out.text()!r}; stderr tail:\n"
                                 f"{tail(self.err.text())}")
        first = self.out.text().split("\n", 1)[0]
        self.started_at = time.monotonic()
        m = LINE_ANY_RE.match(first)
        if m and m.group("presence") != self.presence:
            m = None
        if not m:
            self._kill()
            raise AssertionError(f"first stdout line is not the listening line "
                                 f"(expected presence={self.presence}): {first!r}; "
                                 f"stderr tail:\n{tail(self.err.text())}")
        self.line = first
        self.host = m.group("host")
        self.port = int(m.group("port"))
        self.node = m.group("node")
        return self

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.signalled = True
        self.killed = self.killed or sig == signal.SIGKILL
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Exit status, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stdout_text(self):
        return self.out.text()

    def stderr_text(self):
        return self.err.text()

    def stop(self):
        """SIGTERM + bounded wait; returns a list of problems."""
        problems = []
        if self.proc is None:
            return problems
        # an exit status that nobody has complained about yet
        unexplained = True
        if self.proc.poll() is not None and not self.signalled:
            problems.append(f"node exited on its own with status "
                            f"{self.proc.returncode} during the test; stderr tail:\n"
                            f"{tail(self.err.text())}")
            unexplained = False
        if self.proc.poll() is None:
            self.signalled = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"node did not exit {STOP_TIMEOUT}s after "
                                "SIGTERM; killed")
                self._kill()
                unexplained = False
        self.stop_rc = self.proc.returncode
        self.out.join_eof(5)
        self.err.join_eof(5)
        # A node stops with 0 on SIGTERM and SIGINT; anything else (a crash, a
        # sanitizer's exit status, a leak found at exit) is a failure, unless
        # the test itself killed it.
        if unexplained and self.stop_rc != 0 and not (
                self.killed and self.stop_rc == -signal.SIGKILL):
            problems.append(f"node exited with status {self.stop_rc} at stop; "
                            f"stderr tail:\n{tail(self.err.text())}")
        report = sanitizer_report(self.err.text())
        if report:
            problems.append(f"sanitizer report on the node's stderr:\n{report}")
        out = self.out.text()
        if self.line is not None and out != self.line + "\n":
            problems.append(f"stdout holds more than the listening line: {out!r}")
        return problems

    def close(self):
        """stop(), failing on what it found (a sanitizer report, say)."""
        problems = self.stop()
        assert not problems, f"node {self.node}: " + "; ".join(problems)

    # --- conveniences
    @property
    def ws_base(self):
        return f"ws://{self.host}:{self.port}"

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def run_once(args, timeout=10.0):
    """Run the binary with exactly these args to completion.

    Returns (rc, stdout, stderr); rc None means it was still running after
    timeout (then it is killed)."""
    proc = subprocess.Popen([BIN] + list(args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=5)
        rc = None
    err = err.decode("utf-8", "replace")
    report = sanitizer_report(err)
    if report:
        raise AssertionError(f"sanitizer report from {args}:\n{report}")
    return rc, out.decode("utf-8", "replace"), err


def last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def port_free(port, host=HOST):
    s = socket.socket()
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------
# HTTP over a raw socket


class Resp:
    def __init__(self, status, reason, headers, body, raw_headers=b""):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value (last wins)
        self.body = body
        self.raw_headers = raw_headers

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception as e:
            raise AssertionError(f"HTTP {self.status} body is not JSON ({e}): {self.body[:300]!r}")

    def __repr__(self):
        return f"<HTTP {self.status} {self.headers.get('content-type')} {self.body[:200]!r}>"


def _recv_while(sock, buf, missing, deadline, what):
    """Reads into `buf` while `missing(buf)`, until `deadline`."""
    while missing(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out waiting for {what}; have {bytes(buf[:300])!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed waiting for {what}; have {bytes(buf[:300])!r}")
        buf += chunk
    return buf


def _recv_until(sock, buf, marker, deadline):
    return _recv_while(sock, buf, lambda b: marker not in b, deadline, repr(marker))


def _recv_n(sock, buf, n, deadline):
    return _recv_while(sock, buf, lambda b: len(b) < n, deadline, f"{n} bytes of body")


def read_response(sock, timeout=5.0, body_expected=True):
    """Parse one HTTP/1.1 response from sock. Returns (Resp, leftover bytes)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    _recv_until(sock, buf, b"\r\n\r\n", deadline)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        raise AssertionError(f"not an HTTP status line: {lines[0]!r}")
    status = int(m.group(1))
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = bytearray(rest)
    if status == 101 or status == 204 or status == 304 or not body_expected:
        return Resp(status, m.group(2), headers, b"", head), bytes(body)
    if "content-length" in headers:
        n = int(headers["content-length"])
        _recv_n(sock, body, n, deadline)
        return Resp(status, m.group(2), headers, bytes(body[:n]), head), bytes(body[n:])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            _recv_until(sock, body, b"\r\n", deadline)
            size_line, _, remainder = bytes(body).partition(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            body = bytearray(remainder)
            if size == 0:
                _recv_until(sock, body, b"\r\n", deadline)
                break
            _recv_n(sock, body, size + 2, deadline)
            out += body[:size]
            body = body[size + 2:]
        return Resp(status, m.group(2), headers, bytes(out), head), b""
    # until EOF
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out reading body until EOF")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Resp(status, m.group(2), headers, bytes(body), head), b""


def http(node, method, path, headers=None, body=None, timeout=5.0):
    """One HTTP request with Connection: close. body: bytes, str or JSON-able."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Host": f"{node.host}:{node.port}", "Connection": "close"}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None) + "\r\n"
    with socket.create_connection((node.host, node.port), timeout=timeout) as s:
        s.sendall(req.encode("latin-1") + (body or b""))
        resp, _ = read_response(s, timeout, body_expected=(method != "HEAD"))
        return resp


def assert_error(resp, status, code, what=""):
    """SPEC 2: every error body is {"error":CODE,"message":TEXT}, JSON typed."""
    p = f"{what}: " if what else ""
    assert resp.status == status, (
        f"{p}expected HTTP {status} {code}, got {resp.status} body={resp.body[:300]!r}")
    ct = resp.headers.get("content-type", "")
    assert ct.split(";")[0].strip().lower() == "application/json", (
        f"{p}error Content-Type is {ct!r}, expected application/json")
    j = resp.json()
    assert isinstance(j, dict), f"{p}error body is not an object: {j!r}"
    assert j.get("error") == code, f"{p}error code"
    assert isinstance(j.get("message"), str) and j["message"], (
        f"{p}error body lacks a non-empty message string: {j!r}")
    return j


def get_json(node, path, status=200, headers=None):
    r = http(node, "GET", path, headers=headers)
    assert r.status == status, f"GET {path}: expected {status}, got {r.status} {r.body[:300]!r}"
    ct = r.headers.get("content-type", "")
    assert ct.split(";")[0].strip().lower() == "application/json", (
        f"GET {path}: Content-Type {ct!r}, expected application/json")
    return r.json()


# --------------------------------------------------------------------------
# metrics


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def series_key(name, labels):
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        labels = dict(_LABEL_RE.findall(m.group(2) or ""))
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[series_key(m.group(1), labels)] = value
    return out


def metrics(node):
    r = http(node, "GET", "/metrics")
    assert r.status == 200, f"/metrics answered {r.status}"
    return parse_metrics(r.body.decode("utf-8", "replace"))


def metric(node, name, **labels):
    """Value of one series; None when absent."""
    return metrics(node).get(series_key(name, labels))


async def poll_metric(node, pred, name, timeout=3.0, **labels):
    """Poll /metrics until pred(value) holds. Returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = await asyncio.get_running_loop().run_in_executor(
            None, lambda: metric(node, name, **labels))
        if v is not None and pred(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"metric {series_key(name, labels)} = {v!r} did not satisfy the "
                                 f"condition within {timeout}s")
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------
# raw WebSocket client


OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(path, host, headers=None, key=None):
    hdrs = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or ws_key(),
        "Sec-WebSocket-Version": "13",
    }
    hdrs.update(headers or {})
    return (f"GET {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None) + "\r\n").encode()


def ws_path(user=None, extra=""):
    if user is None:
        return "/ws" + (("?" + extra) if extra else "")
    q = "userId=" + urllib.parse.quote(str(user), safe="")
    return f"/ws?{q}" + (("&" + extra) if extra else "")


def upgrade(node, user=None, headers=None, path=None, timeout=5.0, rcvbuf=None):
    """Send a WebSocket upgrade over a raw socket.

    Returns (Resp, sock, leftover). The socket is closed unless status is 101."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((node.host, node.port))
    s.sendall(upgrade_request(path or ws_path(user), f"{node.host}:{node.port}", headers))
    try:
        resp, left = read_response(s, timeout)
    except Exception:
        s.close()
        raise
    if resp.status != 101:
        s.close()
        return resp, None, b""
    return resp, s, left


class RawWS:
    """Minimal RFC 6455 client on a raw socket: it does only what it is told
    (does not answer pings, does not read unless asked)."""

    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.closed_by_peer = False

    @classmethod
    def connect(cls, node, user, headers=None, rcvbuf=None, timeout=5.0):
        resp, s, left = upgrade(node, user, headers=headers, rcvbuf=rcvbuf,
                                timeout=timeout)
        assert resp.status == 101, (
            f"upgrade for user {user} answered {resp.status} "
            f"{resp.body[:200]!r}")
        return cls(s, left)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            payload = _mask_fast(payload, key)
            hdr += key
        self.sock.sendall(hdr + payload)

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("raw ws read timed out")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed_by_peer = True
                raise EOFError("peer closed the TCP connection")
            self.buf += chunk

    def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload bytes). Raises EOFError at EOF/reset,
        TimeoutError on timeout."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        masked = bool(b1 & 0x80)
        if masked:
            off += 4
        self._fill(off + n, deadline)
        payload = bytes(self.buf[off:off + n])
        if masked:
            payload = _mask_fast(payload, bytes(self.buf[off - 4:off]))
        del self.buf[:off + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_json(self, timeout=5.0, answer_pings=False):
        """Next text message as JSON (skips pings/pongs; answers pings when
        asked). Returns ('close', code) for a close frame."""
        deadline = time.monotonic() + timeout
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == OP_PING:
                if answer_pings:
                    self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                return ("close", close_code(payload))
            if op == OP_TEXT:
                assert fin, "server sent a fragmented text message (unexpected here)"
                return json.loads(payload.decode("utf-8"))
            raise AssertionError(f"unexpected opcode {op} from server")

    def wait_end(self, timeout, answer_pings=False):
        """Read until close frame or EOF. Returns ('close', code) or ('eof', None).
        Raises TimeoutError if neither happens in time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("connection still open")
            try:
                fin, op, payload = self.recv_frame(left)
            except EOFError:
                return ("eof", None)
            except ConnectionResetError:
                return ("eof", None)
            if op == OP_CLOSE:
                return ("close", close_code(payload))
            if op == OP_PING and answer_pings:
                try:
                    self.send_frame(OP_PONG, payload)
                except OSError:
                    pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _mask_fast(payload, key):
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big") \
        if n else b""


def close_code(payload):
    if len(payload) >= 2:
        return struct.unpack("!H", payload[:2])[0]
    return 1005


# --------------------------------------------------------------------------
# websockets clients (asyncio)


class Client:
    """A well-behaved client: websockets' library (answers server pings).

    c = await Client.connect(node, 42) -> c.welcome is the first frame."""

    def __init__(self, ws, welcome):
        self.ws = ws
        self.welcome = welcome
        self._ref = 0

    @classmethod
    async def connect(cls, node, user, headers=None, path=None, max_size=1 << 24,
                      timeout=5.0, origin=None):
        uri = node.ws_base + (path or ws_path(user))
        ws = await websockets.connect(uri, max_size=max_size, ping_interval=None,
                                      open_timeout=timeout, close_timeout=2,
                                      extra_headers=headers, origin=origin,
                                      max_queue=None)
        first = await recv_json(ws, timeout)
        assert first.get("type") == "welcome", f"first frame is not a welcome: {first!r}"
        return cls(ws, first)

    @property
    def user(self):
        return self.welcome.get("userId")

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, timeout=3.0):
        return await recv_json(self.ws, timeout)

    async def expect(self, typ, timeout=3.0):
        m = await self.recv(timeout)
        assert m.get("type") == typ, f"expected a {typ!r} frame, got {m!r}"
        return m

    def next_ref(self, prefix="r"):
        self._ref += 1
        return f"{prefix}{self._ref}"

    async def barrier(self, timeout=3.0):
        """ping/pong round trip; returns every frame received before the pong."""
        ref = self.next_ref("barrier-")
        await self.send({"type": "ping", "ref": ref})
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            m = await self.recv(max(0.01, deadline - time.monotonic()))
            if m.get("type") == "pong" and m.get("ref") == ref:
                return seen
            seen.append(m)

    async def quiet(self, timeout=3.0, what=""):
        """Assert nothing but the pong arrives."""
        seen = await self.barrier(timeout)
        assert not seen, f"{what + ': ' if what else ''}unexpected frames {seen!r}"

    async def send_msg(self, to, data, ref=None):
        obj = {"type": "send", "to": to, "data": data}
        if ref is not None:
            obj["ref"] = ref
        await self.send(obj)

    async def close(self, code=1000):
        try:
            await asyncio.wait_for(self.ws.close(code), 5)
        except Exception:
            pass

    async def wait_closed(self, timeout):
        """Wait until the server closes; returns the close code received
        (None = TCP ended without a close frame)."""
        try:
            await asyncio.wait_for(self.ws.wait_closed(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"connection still open after {timeout}s")
        rcvd = getattr(self.ws, "close_rcvd", None)
        return rcvd.code if rcvd is not None else None


class Bystander:
    """A well-behaved pair that talks all through a hostile test.

    async with Bystander(node) as b:  ...hostile input...
    The talker sends a numbered message to the listener every `period`
    seconds while the block runs. At its end one more message goes out, and
    every message must have reached the listener exactly once and in order,
    each with its ack, with no other frame on either connection.
    `period` stays under the node's hub.rate-limit; in jwt mode `headers`
    carry the pair's tokens."""

    def __init__(self, node, users=(900001, 900002), period=0.02, timeout=5.0,
                 headers=(None, None)):
        self.node, self.users, self.period, self.timeout = node, users, period, timeout
        self.headers = headers
        self.sent = 0
        self.received, self.acked, self.other = [], [], []
        self.progress = asyncio.Event()

    async def __aenter__(self):
        self.talker, self.listener = [
            await Client.connect(self.node, user, headers=headers)
            for user, headers in zip(self.users, self.headers)]
        self.tasks = [asyncio.create_task(self._talk()),
                      asyncio.create_task(self._read(self.talker, "ack", self.acked)),
                      asyncio.create_task(self._read(self.listener, "message",
                                                     self.received))]
        return self

    async def __aexit__(self, et, ev, tb):
        try:
            if et is None:
                await self._verify()
        finally:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.talker.close()
            await self.listener.close()

    async def _send_next(self):
        self.sent += 1
        await self.talker.send_msg(self.listener.user, {"seq": self.sent},
                                   ref=f"b{self.sent}")

    async def _talk(self):
        while True:  # paced, not a wait for anything: ends when the block ends
            await self._send_next()
            await asyncio.sleep(self.period)

    async def _read(self, client, typ, into):
        try:
            async for raw in client.ws:
                m = json.loads(raw)
                if m.get("type") != typ:
                    self.other.append(m)
                elif typ == "ack":
                    into.append(m.get("ref"))
                else:
                    into.append(m.get("data", {}).get("seq"))
                self.progress.set()
        finally:
            self.progress.set()  # a closed connection ends the wait too

    async def _verify(self):
        self.tasks[0].cancel()
        await asyncio.gather(self.tasks[0], return_exceptions=True)
        await self._send_next()  # sent after the hostile input is over
        deadline = time.monotonic() + self.timeout
        while len(self.received) < self.sent or len(self.acked) < self.sent:
            assert not self.other, f"bystander got unexpected frames {self.other[:3]!r}"
            assert all(not t.done() for t in self.tasks[1:]), (
                f"bystander connection ended after {len(self.received)} of "
                f"{self.sent} messages")
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(),
                                       max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise AssertionError(f"bystander got {len(self.received)} of {self.sent} "
                                     f"messages and {len(self.acked)} acks within "
                                     f"{self.timeout}s")
        assert self.received == list(range(1, self.sent + 1)), "bystander messages in order"
        assert self.acked == [f"b{i}" for i in range(1, self.sent + 1)], "bystander acks"
        assert not self.other, f"bystander got unexpected frames {self.other[:3]!r}"


async def recv_json(ws, timeout=3.0):
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no frame within {timeout}s")
    except websockets.exceptions.ConnectionClosed as e:
        raise AssertionError(f"connection closed while waiting for a frame: code={_cc_code(e)}")
    assert isinstance(raw, str), f"server sent a binary frame: {raw[:100]!r}"
    try:
        m = json.loads(raw)
    except ValueError:
        raise AssertionError(f"server frame is not JSON: {raw[:200]!r}")
    assert isinstance(m, dict), f"server frame is not a JSON object: {raw[:200]!r}"
    return m


def _cc_code(e):
    rcvd = getattr(e, "rcvd", None)
    return rcvd.code if rcvd is not None else None


async def recv_until(client, pred, timeout=3.0, what="frame"):
    """Read frames until pred(m); returns (m, skipped list)."""
    deadline = time.monotonic() + timeout
    skipped = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout}s; got {skipped[:5]!r}")
        m = await client.recv(left)
        if pred(m):
            return m, skipped
        skipped.append(m)


async def in_thread(fn, *a, **kw):
    """Run a blocking call off the event loop (so clients keep answering pings)."""
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: fn(*a, **kw))


def now_ms():
    return int(time.time() * 1000)


# --------------------------------------------------------------------------
# Redis (cluster mode): a real redis-server on loopback, a redis-py pub/sub
# listener, and the options of cluster nodes wired to it


REDIS_SERVER = os.environ.get("HUBNODE_REDIS_SERVER") or "/usr/bin/redis-server"
# what redis-py raises while Redis is down, restarting or loading its data
REDIS_DOWN = (OSError, EOFError, redis.RedisError)


class RedisServer:
    """A redis-server of the test's own on a free loopback port.

    rs = RedisServer().start(); rs.client.smembers("p:online")
    rs.stop(); rs.start()  (same port)
    persist=True: append-only file in rs.dir, so a stop/start keeps the data;
    rs.wipe() empties rs.dir (a later start begins without data)."""

    def __init__(self, persist=False, start_timeout=10.0):
        self.port = free_port()
        self.persist = persist
        self._tmp = tempfile.TemporaryDirectory(prefix="hubnode-redis-")
        self.dir = self._tmp.name
        self.start_timeout = start_timeout
        self.proc = None
        self.log = os.path.join(self.dir, "redis.log")
        # redis-py reconnects on the next command after a failure, so a test
        # keeps using this client across a stop/start
        self.client = redis.Redis(host=HOST, port=self.port, decode_responses=True,
                                  socket_timeout=3.0, socket_connect_timeout=3.0)

    def args(self):
        a = [REDIS_SERVER, "--port", str(self.port), "--bind", HOST,
             "--dir", self.dir, "--save", "", "--logfile", self.log,
             "--daemonize", "no", "--protected-mode", "no"]
        if self.persist:
            a += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            a += ["--appendonly", "no"]
        return a

    def start(self):
        assert os.path.exists(REDIS_SERVER), (
            f"{REDIS_SERVER} does not exist (Debian package redis-server)")
        if self.running():
            return self
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"redis-server exited with status {self.proc.returncode} at start on "
                    f"port {self.port}; log tail:\n{tail(self._log_text())}")
            if time.monotonic() > deadline:
                self._kill()
                raise AssertionError(
                    f"redis-server did not answer PING within {self.start_timeout}s")
            time.sleep(0.02)
        self.started_at = time.monotonic()
        return self

    def _answers(self):
        try:
            return self.client.ping()
        except REDIS_DOWN:
            return False

    def _log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(5)

    def stop(self, timeout=10.0):
        """SIGTERM (redis flushes its append-only file), SIGKILL after timeout.
        Returns once the process is gone."""
        self.client.connection_pool.disconnect()
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        self.stopped_at = time.monotonic()

    def wipe(self):
        """Remove the data directory's contents (server must be stopped)."""
        assert not self.running(), "wipe() while redis-server runs"
        for name in os.listdir(self.dir):
            if name == os.path.basename(self.log):
                continue
            path = os.path.join(self.dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def close(self):
        self.stop()
        self.client.close()
        self._tmp.cleanup()


class Subscriber:
    """SUBSCRIBE to channels (redis-py pub/sub) in a thread; records every
    message as (monotonic time, channel, payload str). start() returns once
    Redis has confirmed every subscription; the first connection error ends
    the recording (it is kept in .error)."""

    def __init__(self, server, *channels):
        self.server = server
        self.channels = list(channels)
        self.msgs = []
        self.cond = threading.Condition()
        self.error = None
        self.pubsub = None
        self.thread = None

    def start(self, timeout=5.0):
        self.pubsub = self.server.client.pubsub()
        self.pubsub.subscribe(**{ch: self._record for ch in self.channels})
        deadline = time.monotonic() + timeout
        confirmed = 0
        while confirmed < len(self.channels):
            left = deadline - time.monotonic()
            assert left > 0, f"SUBSCRIBE {self.channels} not confirmed within {timeout}s"
            m = self.pubsub.get_message(timeout=left)
            if m is not None and m["type"] == "subscribe":
                confirmed += 1
        # sleep_time bounds how long stop() waits for the thread
        self.thread = self.pubsub.run_in_thread(sleep_time=0.05, daemon=True,
                                                exception_handler=self._failed)
        return self

    def _record(self, m):
        with self.cond:
            self.msgs.append((time.monotonic(), m["channel"], m["data"]))
            self.cond.notify_all()

    def _failed(self, error, _pubsub, thread):
        with self.cond:
            self.error = error
            self.cond.notify_all()
        thread.stop()

    def messages(self, channel=None):
        with self.cond:
            return [m for m in self.msgs if channel is None or m[1] == channel]

    def events(self, channel=None):
        """Payloads parsed as JSON (a payload that is not JSON is kept as the
        raw string so that assertions show it): list of (time, obj)."""
        out = []
        for t, ch, data in self.messages(channel):
            try:
                out.append((t, json.loads(data)))
            except ValueError:
                out.append((t, data))
        return out

    def wait_for(self, pred, timeout):
        """Wait until pred(list of messages) holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(list(self.msgs)):
                left = deadline - time.monotonic()
                if left <= 0 or (self.error is not None):
                    return pred(list(self.msgs))
                self.cond.wait(left)
            return True

    def close(self):
        if self.thread is not None:
            self.thread.stop()  # the thread closes the pubsub when it ends
            self.thread.join(2)
        elif self.pubsub is not None:
            self.pubsub.close()


CLUSTER_TIMINGS = {
    "heartbeat": "200ms",
    "ttl": "1s",
    "grace": "300ms",
}


def cluster_args(redis_port, prefix, node_id, heartbeat=None, ttl=None, grace=None):
    """Options of a node in cluster mode on the redis-server at redis_port
    with short timings. node_id None = let the node generate one."""
    args = [f"--redis.url=redis://{HOST}:{redis_port}",
            f"--redis.key-prefix={prefix}",
            f"--cluster.heartbeat-interval={heartbeat or CLUSTER_TIMINGS['heartbeat']}",
            f"--cluster.node-ttl={ttl or CLUSTER_TIMINGS['ttl']}",
            f"--presence.grace-period={grace or CLUSTER_TIMINGS['grace']}"]
    if node_id is not None:
        args.append(f"--cluster.node-id={node_id}")
    return args


def random_prefix():
    """A fresh redis.key-prefix ("t1a2b3c4:")."""
    return "t" + os.urandom(4).hex() + ":"


def wait_ready(node, timeout=2.0):
    """Poll /readyz until 200 (SPEC 2: accepting and, in cluster mode, Redis
    up). A node may print its listening line before its Redis connections
    are up; cluster tests that need Redis start from a ready node."""
    poll_until(lambda: http(node, "GET", "/readyz").status == 200, timeout,
               what=f"/readyz 200 on node {node.node}")
    return node


def poll_until(fn, timeout, interval=0.02, what="condition"):
    """Blocking: call fn() until it returns a truthy value; returns it.
    Fails with the last value after timeout. fn may raise what redis-py
    raises while Redis is unreachable, which counts as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except REDIS_DOWN as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)


async def apoll_until(fn, timeout, interval=0.02, what="condition"):
    """poll_until for async tests: fn is a plain (fast, blocking) callable
    or a coroutine function."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if inspect.isawaitable(last):
                last = await last
            if last:
                return last
        except REDIS_DOWN as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)
