"""pytest fixtures and hooks for hubnode's integration tests.

Run with /usr/bin/python3 -m pytest (Debian's python3-pytest, python3-redis,
python3-websockets); the binary under test is $HUBNODE_BIN.

Fixtures:
  case_timeout   (autouse) fails a test still running after its
                 @pytest.mark.timeout(SECONDS) (default 60 s), fixtures
                 included: SIGALRM, as pytest 7.2 on Debian has no
                 pytest-timeout
  event_loop     (autouse) the asyncio.Runner an `async def test_*` runs in;
                 node teardown runs in it too
  start_node     factory: start_node(*opts, args=None, presence="memory")
                 starts a Node; every node it started is stopped at teardown,
                 and a node that crashed, exited non-zero, wrote more than its
                 listening line to stdout or a sanitizer report to stderr
                 fails the test
  node           one standalone Node with default options
  redis_server   a RedisServer of the test's own, started (not started with
                 @pytest.mark.redis_server(started=False); append-only data
                 kept across stop/start with persist=True); stopped at
                 teardown, after the nodes
  redis_client   redis-py client (str replies) of redis_server; reconnects
                 after a stop/start
  key_prefix     a fresh redis.key-prefix for the test
  cluster_node   factory: cluster_node(node_id, *opts, heartbeat=, ttl=,
                 grace=) starts a cluster-mode Node on redis_server under
                 key_prefix with short timings (CLUSTER_TIMINGS); node_id
                 None lets the node generate its id
  subscriber     factory: subscriber(*channels) records what redis_server
                 publishes on them (a started Subscriber); closed at teardown

Async tests: an `async def test_*` runs in event_loop, bounded by its
timeout (then cancelled); blocking calls inside go through in_thread() so
that the websockets clients keep answering the node.
"""

import asyncio
import inspect
import io
import signal

import pytest

pytest.register_assert_rewrite("hubnode_testing")

from hubnode_testing import (Node, RedisServer, Subscriber,  # noqa: E402
                             cluster_args, random_prefix)

DEFAULT_TIMEOUT = 60
# an async test is cancelled at its timeout; SIGALRM only backs that up
# (a loop blocked in a synchronous call) this much later
ASYNC_BACKSTOP = 15


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timeout(seconds): fail the test when it runs longer (default 60)")
    config.addinivalue_line(
        "markers", "redis_server(persist=False, started=True): how the redis_server "
                   "fixture starts")


def case_seconds(item):
    marker = item.get_closest_marker("timeout")
    return marker.args[0] if marker else DEFAULT_TIMEOUT


@pytest.fixture(autouse=True)
def case_timeout(request):
    seconds = case_seconds(request.node)
    is_async = inspect.iscoroutinefunction(request.node.obj)

    def expire(_signum, _frame):
        pytest.fail(f"{request.node.name} timed out after {seconds}s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds + (ASYNC_BACKSTOP if is_async else 0))
    yield seconds
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def event_loop(case_timeout):
    with asyncio.Runner() as runner:
        yield runner


async def _within(coro, seconds):
    """coro's result, or a failure once it ran for `seconds`: it is cancelled,
    and the failure shows where it was waiting."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        where = io.StringIO()
        task.print_stack(file=where)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pytest.fail(f"test timed out after {seconds}s\n{where.getvalue()}")
    return task.result()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Runs `async def` tests (pytest 7.2 alone would skip them)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    funcargs["event_loop"].run(_within(pyfuncitem.obj(**kwargs), case_seconds(pyfuncitem)))
    return True


def _stop_all(nodes):
    problems = []
    for node in reversed(nodes):
        problems += [f"node {node.node}: {p}" for p in node.stop()]
    assert not problems, "\n".join(problems)


@pytest.fixture
def start_node(event_loop):
    nodes = []

    def start(*opts, **kw):
        node = Node(*opts, **kw).start()
        nodes.append(node)
        return node
    yield start
    # stopped while the test's loop runs, so that clients left open answer
    # the nodes' close frames during their shutdown
    event_loop.run(asyncio.to_thread(_stop_all, nodes))


@pytest.fixture
def node(start_node):
    return start_node()


@pytest.fixture
def redis_server(request):
    marker = request.node.get_closest_marker("redis_server")
    opts = dict(marker.kwargs) if marker else {}
    server = RedisServer(persist=opts.pop("persist", False))
    if opts.pop("started", True):
        server.start()
    assert not opts, f"unknown redis_server options {opts}"
    yield server
    server.close()


@pytest.fixture
def redis_client(redis_server):
    return redis_server.client


@pytest.fixture
def key_prefix():
    return random_prefix()


# redis_server before start_node: the nodes are stopped before Redis is
@pytest.fixture
def cluster_node(redis_server, key_prefix, start_node):
    def start(node_id, *opts, heartbeat=None, ttl=None, grace=None):
        return start_node(*cluster_args(redis_server.port, key_prefix, node_id,
                                        heartbeat=heartbeat, ttl=ttl, grace=grace),
                          *opts, presence="redis")
    return start


@pytest.fixture
def subscriber(redis_server):
    subs = []

    def subscribe(*channels):
        sub = Subscriber(redis_server, *channels).start()
        subs.append(sub)
        return sub
    yield subscribe
    for sub in subs:
        sub.close()
