"""SPEC section 2 (Identity at the upgrade), auth.mode=jwt: HS256 tokens from
the Authorization header or the token= query parameter, expiry while open,
bad configuration, and that neither the secret nor a token is ever logged."""

import base64
import hashlib
import hmac
import json
import time

from hubnode_testing import (Bystander, Client, assert_error, in_thread, last_line, metric,
                             run_once, tail, upgrade)

SECRET = "jwt-test-secret-" + "k" * 32  # 48 bytes
JWT = ["--auth.mode=jwt", f"--auth.jwt-secret={SECRET}"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims, secret=SECRET, header=None):
    h = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def bystander(n):
    return Bystander(n, headers=[bearer(make_token({"sub": str(u)}))
                                 for u in (900001, 900002)])


async def welcome_of(n, headers=None, path="/ws"):
    """A client admitted with these credentials, and its welcome."""
    c = await Client.connect(n, None, headers=headers, path=path)
    return c, c.welcome


def unauthorized(n, headers=None, path="/ws", what=""):
    resp, _, _ = upgrade(n, headers=headers, path=path)
    assert_error(resp, 401, "unauthorized", what)


async def test_header_token_admits_sub(start_node):
    n = start_node(*JWT)
    c, w = await welcome_of(n, bearer(make_token({"sub": "42"})))
    assert w.get("userId") == "42", "welcome userId"
    await c.close()
    c, w = await welcome_of(n, bearer(make_token({"sub": "007",
                                                  "exp": int(time.time()) + 600})))
    assert w.get("userId") == "7", "welcome userId of sub 007"
    await c.close()


async def test_query_token_admits_sub_and_userid_is_ignored(start_node):
    n = start_node(*JWT)
    c, w = await welcome_of(n, path=f"/ws?token={make_token({'sub': '43'})}&userId=99")
    assert w.get("userId") == "43", "welcome userId"
    await c.close()
    # userId alone is no identity in jwt mode
    await in_thread(unauthorized, n, path="/ws?userId=5", what="userId without a token")


async def test_header_wins_over_query(start_node):
    n = start_node(*JWT)
    good, bad = make_token({"sub": "1"}), make_token({"sub": "2"}, secret="x" * 40)
    c, w = await welcome_of(n, bearer(good), path=f"/ws?token={bad}")
    assert w.get("userId") == "1", "header token used"
    await c.close()
    await in_thread(unauthorized, n, bearer(bad), path=f"/ws?token={good}",
                    what="bad header, good query")


async def test_bad_tokens_are_401_unauthorized(start_node):
    now = int(time.time())
    good = make_token({"sub": "42"})
    h, p, s = good.split(".")
    bad = {
        "missing": None,
        "empty bearer": "",
        "garbage": "not-a-jwt",
        "two segments": f"{h}.{p}",
        "four segments": f"{good}.{s}",
        "wrong secret": make_token({"sub": "42"}, secret="w" * 48),
        "alg none": make_token({"sub": "42"}, header={"alg": "none"}),
        "alg none unsigned": b64url(b'{"alg":"none"}') + f".{p}.",
        "alg HS512": make_token({"sub": "42"}, header={"alg": "HS512"}),
        "no alg": make_token({"sub": "42"}, header={"typ": "JWT"}),
        "padding": good + "=",
        "standard base64": f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}x",
        "expired": make_token({"sub": "42", "exp": now - 10}),
        "not yet valid": make_token({"sub": "42", "nbf": now + 600}),
        "sub missing": make_token({"exp": now + 600}),
        "sub number": make_token({"sub": 42}),
        "sub abc": make_token({"sub": "abc"}),
        "sub -1": make_token({"sub": "-1"}),
        "sub too big": make_token({"sub": "18446744073709551616"}),
        # just over the 8 KiB token limit
        "oversized": make_token({"sub": "42", "pad": "x" * 6100}),
    }
    assert 8192 < len(bad["oversized"]) < 8400, f"oversized is {len(bad['oversized'])}"

    def reject_all():
        count = 0
        for what, tok in bad.items():
            if tok is None:
                unauthorized(n, what=what)
            else:
                unauthorized(n, {"Authorization": f"Bearer {tok}"}, what=what + " (header)")
                if what != "oversized":  # a target that long is the router's business
                    unauthorized(n, path=f"/ws?token={tok}", what=what + " (query)")
                    count += 1
            count += 1
        return count

    n = start_node(*JWT)
    async with bystander(n):
        before = await in_thread(metric, n, "hubnode_handshakes_rejected_total",
                                 reason="unauthorized") or 0
        count = await in_thread(reject_all)
        after = await in_thread(metric, n, "hubnode_handshakes_rejected_total",
                                reason="unauthorized")
        assert after - before == count, "rejected{reason=unauthorized}"
        c, w = await welcome_of(n, bearer(good))
        assert w.get("userId") == "42", "welcome after the bad ones"
        await c.close()


async def test_token_expiring_while_open_closes_1008(start_node):
    n = start_node(*JWT)
    async with bystander(n):
        exp = time.time() + 1.5
        c, w = await welcome_of(n, bearer(make_token({"sub": "9", "exp": exp})))
        stay, _ = await welcome_of(n, bearer(make_token({"sub": "10"})))
        code = await c.wait_closed(5)  # None: dropped without a close frame
        at = time.time()
        assert code == 1008, "close at expiry"
        assert at >= exp - 0.05, f"closed {exp - at:.2f}s before exp"
        assert at <= exp + 1.5, f"closed {at - exp:.2f}s after exp"
        await stay.send({"type": "ping", "ref": "p"})
        pong = await stay.recv()
        assert pong == {"type": "pong", "ref": "p"}, "token without exp still open"
        await stay.close()


def test_jwt_without_or_with_short_secret_exits_2(start_node):
    for args, words in [
        (["--auth.mode=jwt"], ["jwt-secret"]),
        (["--auth.mode=jwt", "--auth.jwt-secret=short-secret-31-bytes-long-xxxx"],
         ["32 bytes"]),
    ]:
        rc, out, err = run_once(["--server.port=0"] + args)
        assert rc == 2, f"exit status for {args}; stderr {tail(err, 3)!r}"
        assert out == "", "stdout"
        last = last_line(err)
        assert any(w in last for w in words), f"last stderr line {last!r} lacks {words}"
        assert "short-secret" not in err, f"the secret is in stderr: {err!r}"
    # exactly 32 bytes is enough (teardown checks it stops cleanly)
    start_node("--auth.mode=jwt", "--auth.jwt-secret=" + "s" * 32)


async def test_secret_and_tokens_never_logged(start_node):
    tok = make_token({"sub": "77", "exp": int(time.time()) + 600})
    bad = make_token({"sub": "78"}, secret="b" * 48)
    n = start_node(*JWT, "--logger.console-verbosity=debug", "--server.api-key=api-key-s3cret")
    c, _ = await welcome_of(n, bearer(tok))
    await c.close()
    c, _ = await welcome_of(n, path=f"/ws?token={tok}")
    await c.close()
    await in_thread(unauthorized, n, bearer(bad))
    await in_thread(unauthorized, n, path=f"/ws?token={bad}")
    await in_thread(n.close)  # everything it logged is on stderr now
    err = n.stderr_text()
    assert "userid trusts" not in err, "the userid-mode warning is logged in jwt mode"
    assert "rejected handshake" in err, "rejections are not logged at all"
    for secret in [SECRET, "api-key-s3cret", tok, bad, tok.split(".")[2],
                   bad.split(".")[2]]:
        assert secret not in err, f"stderr holds a secret or token ({secret[:12]}...)"


