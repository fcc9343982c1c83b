"""Black-box harness for hubnode integration tests.

Drives the real binary over real loopback sockets. Standard library plus
python3-websockets (Debian's, so run these files with /usr/bin/python3).

Pieces:
  Node            start/stop one hubnode process (context manager)
  run_once        run the binary to completion (bad configuration, --help)
  http            one HTTP/1.1 request over a raw socket, parsed response
  RawWS           a hand-rolled WebSocket client over a raw socket
  Client          a websockets client that reads the welcome first
  Bystander       a well-behaved pair talking all through a hostile test
  RedisServer     a redis-server of the test's own on a free loopback port
                  (stop/start on the same port, with or without its data)
  RedisConn       a tiny RESP client (stdlib sockets); Subscriber: SUBSCRIBE
                  in a thread, recording every message
  cluster_node    a Node in cluster mode on a RedisServer, short timings
  case / main     a tiny test runner: "ok NAME" / "FAIL NAME: reason"
"""

import asyncio
import base64
import inspect
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
from pathlib import Path

try:
    import websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover - reported by main()
    websockets = None

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


class Skip(Exception):
    pass


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(actual, expected, what=""):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}"
                             if what else
                             f"expected {expected!r}, got {actual!r}")


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

    with Node("--hub.ping-interval=200ms") as n:
        n.host, n.port, n.node, n.proc
    On exit: SIGTERM, bounded wait (SIGKILL after STOP_TIMEOUT), then checks
    that the node did not die on its own, exited 0 (unless the test killed
    it with SIGKILL), wrote only its one line to stdout and no sanitizer
    report to stderr.
    """

    def __init__(self, *opts, port0=True, args=None, start_timeout=START_TIMEOUT,
                 presence="memory"):
        # presence: the mode the listening line must name ("memory" or
        # "redis"; cluster tests use cluster_node() below)
        self.presence = presence
        if args is None:
            args = (["--server.port=0"] if port0 else []) + list(opts)
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
            fail(f"node binary {BIN} does not exist")
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
            fail((f"node exited with status {rc} before printing its listening line"
                  if rc is not None else
                  f"node did not print its listening line within {self.start_timeout}s")
                 + f" (args={self.args[1:]}); "
                 f"stdout={self.out.text()!r}; stderr tail:\n"
                 f"{tail(self.err.text())}")
        first = self.out.text().split("\n", 1)[0]
        self.started_at = time.monotonic()
        m = LINE_ANY_RE.match(first)
        if m and m.group("presence") != self.presence:
            m = None
        if not m:
            self._kill()
            fail(f"first stdout line is not the listening line "
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

    def _stopped(self, et, problems):
        if et is None and problems:
            fail("; ".join(problems))
        # The case failed already; what went wrong with the node (a
        # sanitizer report, say) may be why, so it goes to the log.
        for problem in problems:
            print(f"note: node {self.node}: {problem}", flush=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        self._stopped(et, self.stop())
        return False

    async def __aenter__(self):
        return await in_thread(self.start)

    async def __aexit__(self, et, ev, tb):
        # stop from a worker thread so that this loop's clients keep running
        # (they answer the node's close frames during its shutdown)
        self._stopped(et, await in_thread(self.stop))
        return False

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
        fail(f"sanitizer report from {args}:\n{report}")
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
            fail(f"HTTP {self.status} body is not JSON ({e}): {self.body[:300]!r}")

    def __repr__(self):
        return f"<HTTP {self.status} {self.headers.get('content-type')} {self.body[:200]!r}>"


def _recv_until(sock, buf, marker, deadline):
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out waiting for {marker!r}; have {bytes(buf[:300])!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; have {bytes(buf[:300])!r}")
        buf += chunk
    return buf


def _recv_n(sock, buf, n, deadline):
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out reading body ({len(buf)}/{n})")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed reading body ({len(buf)}/{n})")
        buf += chunk
    return buf


def read_response(sock, timeout=5.0, body_expected=True):
    """Parse one HTTP/1.1 response from sock. Returns (Resp, leftover bytes)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    _recv_until(sock, buf, b"\r\n\r\n", deadline)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        fail(f"not an HTTP status line: {lines[0]!r}")
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
    check(resp.status == status,
          f"{p}expected HTTP {status} {code}, got {resp.status} body={resp.body[:300]!r}")
    ct = resp.headers.get("content-type", "")
    check(ct.split(";")[0].strip().lower() == "application/json",
          f"{p}error Content-Type is {ct!r}, expected application/json")
    j = resp.json()
    check(isinstance(j, dict), f"{p}error body is not an object: {j!r}")
    eq(j.get("error"), code, f"{p}error code")
    check(isinstance(j.get("message"), str) and j["message"],
          f"{p}error body lacks a non-empty message string: {j!r}")
    return j


def get_json(node, path, status=200, headers=None):
    r = http(node, "GET", path, headers=headers)
    check(r.status == status, f"GET {path}: expected {status}, got {r.status} {r.body[:300]!r}")
    ct = r.headers.get("content-type", "")
    check(ct.split(";")[0].strip().lower() == "application/json",
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
    check(r.status == 200, f"/metrics answered {r.status}")
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
            fail(f"metric {series_key(name, labels)} = {v!r} did not satisfy the "
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
        check(resp.status == 101, f"upgrade for user {user} answered {resp.status} "
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
                check(fin, "server sent a fragmented text message (unexpected here)")
                return json.loads(payload.decode("utf-8"))
            fail(f"unexpected opcode {op} from server")

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
        check(first.get("type") == "welcome", f"first frame is not a welcome: {first!r}")
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
        check(m.get("type") == typ, f"expected a {typ!r} frame, got {m!r}")
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
        check(not seen, f"{what + ': ' if what else ''}unexpected frames {seen!r}")

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
            fail(f"connection still open after {timeout}s")
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
            check(not self.other, f"bystander got unexpected frames {self.other[:3]!r}")
            check(all(not t.done() for t in self.tasks[1:]),
                  f"bystander connection ended after {len(self.received)} of "
                  f"{self.sent} messages")
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(),
                                       max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                fail(f"bystander got {len(self.received)} of {self.sent} messages and "
                     f"{len(self.acked)} acks within {self.timeout}s")
        eq(self.received, list(range(1, self.sent + 1)), "bystander messages in order")
        eq(self.acked, [f"b{i}" for i in range(1, self.sent + 1)], "bystander acks")
        check(not self.other, f"bystander got unexpected frames {self.other[:3]!r}")


async def recv_json(ws, timeout=3.0):
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        fail(f"no frame within {timeout}s")
    except websockets.exceptions.ConnectionClosed as e:
        fail(f"connection closed while waiting for a frame: code={_cc_code(e)}")
    check(isinstance(raw, str), f"server sent a binary frame: {raw[:100]!r}")
    try:
        m = json.loads(raw)
    except ValueError:
        fail(f"server frame is not JSON: {raw[:200]!r}")
    check(isinstance(m, dict), f"server frame is not a JSON object: {raw[:200]!r}")
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
            fail(f"no {what} within {timeout}s; got {skipped[:5]!r}")
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
# Redis (cluster mode): a real redis-server on loopback, a tiny RESP client,
# a pub/sub listener, and cluster nodes wired to it


REDIS_SERVER = os.environ.get("HUBNODE_REDIS_SERVER") or "/usr/bin/redis-server"


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


def _resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _resp_read(f):
    """One RESP2 reply from a binary file object. Bulk strings come back as
    str (utf-8), nil as None, errors as RedisError instances (not raised, so
    that a reply inside an array stays in place)."""
    line = f.readline()
    if not line:
        raise EOFError("redis closed the connection")
    if not line.endswith(b"\r\n"):
        raise EOFError(f"truncated redis reply {line[:100]!r}")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        return RedisError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) < n + 2:
            raise EOFError("truncated redis bulk string")
        return data[:n].decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_resp_read(f) for _ in range(n)]
    raise EOFError(f"unknown redis reply type {line[:100]!r}")


class RedisConn:
    """One blocking RESP connection; reconnects on the next command after a
    failure (so a test can keep using it across a redis-server restart)."""

    def __init__(self, port, host=HOST, timeout=3.0):
        self.addr = (host, port)
        self.timeout = timeout
        self.sock = None
        self.f = None
        self.lock = threading.Lock()

    def _connect(self):
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def _drop(self):
        if self.sock is not None:
            try:
                self.f.close()
                self.sock.close()
            except OSError:
                pass
        self.sock = self.f = None

    def close(self):
        with self.lock:
            self._drop()

    def __call__(self, *args):
        """Run one command; returns the reply, raises RedisError on an error
        reply and OSError/EOFError when Redis is unreachable."""
        with self.lock:
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(_resp_encode(args))
                r = _resp_read(self.f)
            except (OSError, EOFError, ValueError):
                self._drop()
                raise
        if isinstance(r, RedisError):
            raise r
        return r


class RedisServer:
    """A redis-server of the test's own on a free loopback port.

    rs = RedisServer().start()   (or: with RedisServer() as rs:)
    rs("SMEMBERS", "p:online"); rs.stop(); rs.start()  (same port)
    persist=True: append-only file in rs.dir, so a stop/start keeps the data;
    rs.wipe() empties rs.dir (a later start begins without data)."""

    def __init__(self, port=None, persist=False, start_timeout=10.0):
        import tempfile
        self.port = port or free_port()
        self.persist = persist
        self._tmp = tempfile.TemporaryDirectory(prefix="hubnode-redis-")
        self.dir = self._tmp.name
        self.start_timeout = start_timeout
        self.proc = None
        self.conn = RedisConn(self.port)
        self.log = os.path.join(self.dir, "redis.log")

    @property
    def url(self):
        return f"redis://{HOST}:{self.port}"

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
        if not os.path.exists(REDIS_SERVER):
            fail(f"{REDIS_SERVER} does not exist (Debian package redis-server)")
        if self.running():
            return self
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if self.conn("PING") == "PONG":
                    break
            except (OSError, EOFError, RedisError):
                pass
            if self.proc.poll() is not None:
                fail(f"redis-server exited with status {self.proc.returncode} at "
                     f"start on port {self.port}; log tail:\n{tail(self._log_text())}")
            if time.monotonic() > deadline:
                self._kill()
                fail(f"redis-server did not answer PING within {self.start_timeout}s")
            time.sleep(0.02)
        self.started_at = time.monotonic()
        return self

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
        Returns once the process is gone and the port no longer answers."""
        self.conn.close()
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        self.stopped_at = time.monotonic()

    def kill(self):
        self.conn.close()
        self._kill()
        self.stopped_at = time.monotonic()

    def wipe(self):
        """Remove the data directory's contents (server must be stopped)."""
        import shutil
        check(not self.running(), "wipe() while redis-server runs")
        for name in os.listdir(self.dir):
            if name == os.path.basename(self.log):
                continue
            path = os.path.join(self.dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def restart(self, keep_data=True):
        self.stop()
        if not keep_data:
            self.wipe()
        return self.start()

    def close(self):
        self.stop()
        self._tmp.cleanup()

    def __call__(self, *args):
        return self.conn(*args)

    # conveniences (keys are full names, prefix included)
    def smembers(self, key):
        return set(self("SMEMBERS", key))

    def sismember(self, key, member):
        return self("SISMEMBER", key, member) == 1

    def hgetall(self, key):
        r = self("HGETALL", key)
        return dict(zip(r[0::2], r[1::2]))

    def exists(self, key):
        return self("EXISTS", key) == 1

    def keys(self, pattern):
        return set(self("KEYS", pattern))

    def pttl(self, key):
        return self("PTTL", key)

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        self.close()
        return False

    async def __aenter__(self):
        return await in_thread(self.start)

    async def __aexit__(self, et, ev, tb):
        await in_thread(self.close)
        return False


class Subscriber:
    """SUBSCRIBE to channels on a raw socket in a thread; records every
    message as (monotonic time, channel, payload str). start() returns once
    Redis has confirmed every subscription."""

    def __init__(self, redis, *channels):
        self.port = redis.port if isinstance(redis, RedisServer) else int(redis)
        self.channels = list(channels)
        self.msgs = []
        self.cond = threading.Condition()
        self.error = None
        self.sock = None
        self.thread = None

    def start(self, timeout=5.0):
        self.sock = socket.create_connection((HOST, self.port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        self.sock.sendall(_resp_encode(["SUBSCRIBE"] + self.channels))
        for _ in self.channels:
            r = _resp_read(self.f)
            check(isinstance(r, list) and r and r[0] == "subscribe",
                  f"unexpected SUBSCRIBE reply {r!r}")
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        try:
            while True:
                r = _resp_read(self.f)
                if isinstance(r, list) and len(r) == 3 and r[0] == "message":
                    with self.cond:
                        self.msgs.append((time.monotonic(), r[1], r[2]))
                        self.cond.notify_all()
        except (OSError, EOFError, ValueError) as e:
            with self.cond:
                self.error = e
                self.cond.notify_all()

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
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
        if self.thread is not None:
            self.thread.join(2)

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        self.close()
        return False


def random_prefix():
    """A fresh redis.key-prefix per test ("t1a2b3c4:")."""
    return "t" + os.urandom(4).hex() + ":"


CLUSTER_TIMINGS = {
    "heartbeat": "200ms",
    "ttl": "1s",
    "grace": "300ms",
}


def cluster_node(redis, prefix, node_id, *opts, heartbeat=None, ttl=None,
                 grace=None, **kw):
    """A Node in cluster mode on `redis` (a RedisServer or a port) with short
    timings; its listening line must say presence=redis. node_id None = let
    the node generate one."""
    port = redis.port if isinstance(redis, RedisServer) else int(redis)
    args = [f"--redis.url=redis://{HOST}:{port}",
            f"--redis.key-prefix={prefix}",
            f"--cluster.heartbeat-interval={heartbeat or CLUSTER_TIMINGS['heartbeat']}",
            f"--cluster.node-ttl={ttl or CLUSTER_TIMINGS['ttl']}",
            f"--presence.grace-period={grace or CLUSTER_TIMINGS['grace']}"]
    if node_id is not None:
        args.append(f"--cluster.node-id={node_id}")
    return Node(*(args + list(opts)), presence="redis", **kw)


def wait_ready(node, timeout=2.0):
    """Poll /readyz until 200 (SPEC 2: accepting and, in cluster mode, Redis
    up). A node may print its listening line before its Redis connections
    are up; cluster cases that need Redis start from a ready node."""
    poll_until(lambda: http(node, "GET", "/readyz").status == 200, timeout,
               what=f"/readyz 200 on node {node.node}")
    return node


def poll_until(fn, timeout, interval=0.02, what="condition"):
    """Blocking: call fn() until it returns a truthy value; returns it.
    Fails with the last value after timeout. fn may raise OSError/EOFError
    (Redis unreachable), which counts as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except (OSError, EOFError, RedisError) as e:
            last = e
        if time.monotonic() > deadline:
            fail(f"{what} not reached within {timeout}s (last: {last!r})")
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
        except (OSError, EOFError, RedisError) as e:
            last = e
        if time.monotonic() > deadline:
            fail(f"{what} not reached within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------
# runner


CASES = []


def case(fn=None, *, timeout=60):
    def reg(f):
        CASES.append((f.__name__, f, timeout))
        return f
    return reg(fn) if fn is not None else reg


class _CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise _CaseTimeout()


def main():
    if websockets is None:
        print("FAIL import: python websockets module missing (run with /usr/bin/python3, "
              "Debian package python3-websockets)")
        sys.exit(1)
    wanted = sys.argv[1:]
    passed = failed = skipped = 0
    failures = []
    signal.signal(signal.SIGALRM, _alarm)
    for name, fn, timeout in CASES:
        if wanted and not any(w in name for w in wanted):
            continue
        t0 = time.monotonic()
        try:
            if inspect.iscoroutinefunction(fn):
                async def runner():
                    try:
                        await asyncio.wait_for(fn(), timeout)
                    except asyncio.TimeoutError:
                        raise _CaseTimeout()
                signal.alarm(int(timeout) + 15)  # backstop
                asyncio.run(runner())
            else:
                signal.alarm(int(timeout))
                fn()
            signal.alarm(0)
            passed += 1
            print(f"ok {name} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Skip as e:
            signal.alarm(0)
            skipped += 1
            print(f"skip {name}: {e}", flush=True)
        except _CaseTimeout:
            signal.alarm(0)
            failed += 1
            failures.append(name)
            print(f"FAIL {name}: case timed out after {timeout}s", flush=True)
        except Exception as e:  # noqa: BLE001
            signal.alarm(0)
            failed += 1
            failures.append(name)
            msg = str(e) or type(e).__name__
            if not isinstance(e, AssertionError):
                msg = f"{type(e).__name__}: {msg}\n" + "".join(
                    traceback.format_exception(type(e), e, e.__traceback__)[-4:])
            print(f"FAIL {name}: {msg}", flush=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    if failures:
        print("failed: " + " ".join(failures))
    sys.exit(1 if failed else 0)
