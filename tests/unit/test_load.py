"""pyfleet.load: the bounded HTTPS load, against a real HTTPS server on 127.0.0.1 started here.

The server (http.server in a thread, TLS with a throwaway self-signed certificate,
loopback only) answers each request as the test's plan says: 200, 502, a close
before the answer, a reset, an answer cut short, a chunked answer, or no answer.
It records every request it read, with the client port of its connection, so the
tests see what the load really sent and on which connection.
"""

import asyncio
import json
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pyfleet import load
from pyfleet.load import Failure, Load, Report


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    where = tmp_path_factory.mktemp("tls")
    key, cert = where / "key.pem", where / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=app.test", "-days", "1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Seen:
    conn: int  # the client's port: one per connection
    method: str
    path: str
    host: str
    agent: str
    body: bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer()

    do_POST = do_GET

    def answer(self):
        site = self.server.site
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = Seen(
            self.client_address[1], self.command, self.path, self.headers["Host"], self.headers["User-Agent"], body
        )
        with site.lock:
            site.seen.append(seen)
            what = site.plan(len(site.seen) - 1, seen, site.seen)
        if what == "close":  # close the connection before any byte of the answer
            self.close_connection = True
            return
        if what == "reset":
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if what == "hang":
            site.release.wait(10)
            self.close_connection = True
            return
        payload = json.dumps({"path": self.path}).encode()
        status = int(what) if what.isdigit() else 200
        self.send_response(status)
        if what == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"10;x=y\r\n" + b"a" * 16 + b"\r\n3\r\nefg\r\n0\r\n\r\n")
            return
        self.send_header("Content-Type", "application/json")
        if what == "cut":
            self.send_header("Content-Length", str(len(payload) + 100))
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(payload)))
        if what in ("close-header", "close-after"):  # with or without saying so
            self.close_connection = True
        if what == "close-header":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


class Site:
    """A TLS HTTP/1.1 server on 127.0.0.1; ``plan(n, seen, all_seen)`` -> how to answer request n."""

    def __init__(self, certificate, plan=lambda n, seen, all_seen: "ok"):
        self.plan, self.seen, self.lock, self.release = plan, [], threading.Lock(), threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.site = self
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*certificate)
        self.sni = []  # the server name each TLS connection asked for
        tls.sni_callback = lambda sock, name, context: self.sni.append(name) and None
        self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def connections(self):
        return {s.conn for s in self.seen}


@pytest.fixture
def site(certificate):
    sites = []

    def make(plan=lambda n, seen, all_seen: "ok"):
        sites.append(Site(certificate, plan))
        return sites[-1]

    yield make
    for s in sites:
        s.close()


def finished(ld, seconds=5):
    """The load's Report once it has stopped by itself (its bounds), without stop() asking it to."""
    ld._thread.join(seconds)
    assert not ld._thread.is_alive(), "the load did not stop by itself"
    return ld.stop()


# --- what it sends --------------------------------------------------------------------------


def test_each_connection_sends_get_and_post_in_turn_on_one_keepalive_connection_up_to_max_requests(site):
    s = site()
    ld = Load("127.0.0.1", {"shop": "shop.test", "blog": "blog.test"}, connections=2, port=s.port, max_requests=5)
    report = finished(ld.start())
    assert report.requests == {"shop": 10, "blog": 10}
    assert report.failures == [] and report.resent == {}
    assert report.total == 20 and report.failed == 0 and len(report.latencies) == 20
    assert len(s.seen) == 20 and len(s.connections()) == 4  # 2 per app, each kept alive
    for conn in s.connections():
        mine = [x for x in s.seen if x.conn == conn]
        assert [(x.method, x.path) for x in mine] == [("GET", "/"), ("POST", "/echo")] * 2 + [("GET", "/")]
        assert len({x.host for x in mine}) == 1 and mine[0].agent == "pyfleet-load"
        assert mine[0].body == b""
        posted = json.loads(mine[1].body)
        assert posted["n"] == 1 and posted["pad"] == "x" * 64 and posted["conn"] in (0, 1)
    assert sorted(json.loads(x.body)["conn"] for x in s.seen if x.method == "POST" and x.host == "shop.test") == [
        0,
        0,
        1,
        1,
    ]
    assert {x.host for x in s.seen} == {"shop.test", "blog.test"}
    assert report.started <= time.time() and 0 < report.seconds < 10
    assert all(0 <= seconds < 5 for seconds in report.latencies)


def test_a_load_stops_by_itself_after_max_seconds(site):
    s = site()
    started = time.monotonic()
    ld = Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_seconds=0.5, pause=0.05).start()
    report = finished(ld, 5)
    took = time.monotonic() - started
    assert 0.5 <= took < 3
    # Paused 0.05 s after each request: about 10 requests, not thousands.
    assert 3 <= report.requests["shop"] <= 12 and report.failed == 0


def test_no_load_runs_longer_than_the_hard_limit():
    assert Load("127.0.0.1", {}, max_seconds=10_000).max_seconds == load.HARD_LIMIT_SECONDS == 900
    assert Load("127.0.0.1", {}, max_seconds=5).max_seconds == 5


def test_stop_ends_a_running_load_and_the_context_manager_stops_it(site):
    s = site()
    with Load("127.0.0.1", {"shop": "shop.test"}, connections=2, port=s.port) as ld:
        deadline = time.monotonic() + 5
        while len(s.seen) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not ld._thread.is_alive()
    count = len(s.seen)
    assert count >= 10 and ld.report.requests["shop"] >= 10 and ld.report.seconds > 0
    time.sleep(0.2)
    assert len(s.seen) == count  # nothing sent after stop()


# --- what counts as failed --------------------------------------------------------------------


def test_non_2xx_answers_are_failures_with_their_time_app_and_method(site):
    s = site(lambda n, seen, all_seen: "502" if n % 3 == 2 else "ok")
    before = time.time()
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=9).start())
    assert report.requests["shop"] == 6 and report.failed == 3 and report.total == 9
    assert [(f.app, f.method, f.what) for f in report.failures] == [
        ("shop", "GET", "HTTP 502"),
        ("shop", "POST", "HTTP 502"),
        ("shop", "GET", "HTTP 502"),
    ]
    assert all(before <= f.at <= time.time() for f in report.failures)
    assert len(report.latencies) == 9  # a 502 is an answer: its time counts
    assert len(s.connections()) == 1  # a 502 keeps the connection


def test_a_failing_server_is_counted_and_the_bounded_load_still_stops(site):
    s = site(lambda n, seen, all_seen: "reset")
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=2, port=s.port, max_requests=4).start())
    assert report.requests == {} and report.failed == 8 and report.total == 8 and report.resent == {}
    assert len(s.seen) == 8 and len(s.connections()) == 8  # a new connection after each failure
    assert {f.what.split(":")[0] for f in report.failures} <= {
        "ConnectionResetError",
        "connection closed before the answer",
    }
    assert report.latencies == []


def test_a_refused_connection_is_a_failure_naming_the_error():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    before = time.time()
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=port, max_requests=4).start())
    assert report.failed == 4 and report.requests == {}
    assert all(f.what.startswith("ConnectionRefusedError: [Errno 111]") for f in report.failures), report.failures
    assert [(f.app, f.method) for f in report.failures] == [("shop", "GET"), ("shop", "POST")] * 2
    assert all(before <= f.at <= time.time() for f in report.failures)
    # A short pause after each failure: no busy loop against a host that is down, and no long gap either.
    assert 0.15 <= report.failures[-1].at - before < 2  # three pauses of 0.05 s between four failures


def test_an_idle_keepalive_connection_closed_by_the_server_is_resent_once_on_a_new_one(site):
    # The server closes the connection instead of answering the 3rd request (a reused connection).
    s = site(lambda n, seen, all_seen: "close" if n == 2 else "ok")
    ld = Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=4)
    closed = []
    ld._close = lambda conn: closed.append(conn) or Load._close(conn)
    report = finished(ld.start())
    # Both connections closed on our side: the one the server closed, and the last one at the end.
    assert len(closed) == 2 and None not in closed and closed[0] != closed[1]
    assert s.sni == ["shop.test", "shop.test"]
    assert report.failures == [] and report.resent == {"shop": 1} and report.requests == {"shop": 4}
    assert [(x.method, x.path) for x in s.seen] == [
        ("GET", "/"),
        ("POST", "/echo"),
        ("GET", "/"),
        ("GET", "/"),
        ("POST", "/echo"),
    ]
    first, second = s.seen[2].conn, s.seen[3].conn
    assert first == s.seen[0].conn and second != first and s.seen[4].conn == second
    assert "resent after an idle keepalive close" in report.describe() and ", 1 resent" in report.describe()


def test_every_idle_close_is_counted(site):
    s = site(lambda n, seen, all_seen: "close" if n in (2, 5) else "ok")
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=5).start())
    assert report.resent == {"shop": 2} and report.requests == {"shop": 5} and report.failures == []
    assert len(s.connections()) == 3


def test_a_close_on_the_resent_request_too_is_a_failure(site):
    s = site(lambda n, seen, all_seen: "close" if n in (1, 2) else "ok")
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=3).start())
    assert report.resent == {"shop": 1}
    assert [(f.method, f.what) for f in report.failures] == [("POST", "connection closed before the answer")]
    assert report.requests == {"shop": 2} and report.total == 3


def test_a_close_before_the_answer_on_a_new_connection_is_a_failure_not_resent(site):
    s = site(lambda n, seen, all_seen: "close" if n == 0 else "ok")
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=2).start())
    assert report.resent == {}
    assert [(f.method, f.what) for f in report.failures] == [("GET", "connection closed before the answer")]
    assert report.requests == {"shop": 1} and len(s.seen) == 2


def test_an_answer_cut_short_is_a_failure_and_not_resent(site):
    s = site(lambda n, seen, all_seen: "cut" if n == 1 else "ok")
    ld = Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=3)
    closed = []
    ld._close = lambda conn: closed.append(conn) or Load._close(conn)
    report = finished(ld.start())
    assert len(closed) == 2 and None not in closed  # the cut one, then the last one
    assert [(f.method, f.what) for f in report.failures] == [("POST", "answer cut short: IncompleteReadError")]
    assert report.resent == {} and report.requests == {"shop": 2}
    assert len(s.seen) == 3 and s.seen[2].conn != s.seen[0].conn


def test_no_answer_within_the_request_timeout_is_a_timeout_failure(site, monkeypatch):
    monkeypatch.setattr(load, "REQUEST_TIMEOUT", 0.3)
    s = site(lambda n, seen, all_seen: "hang" if n == 0 else "ok")
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=2).start())
    s.release.set()
    assert [(f.method, f.what) for f in report.failures] == [("GET", "TimeoutError")]
    assert report.requests == {"shop": 1} and report.resent == {}


def test_connection_close_and_chunked_answers_are_read_whole(site):
    s = site(lambda n, seen, all_seen: {0: "close-header", 1: "chunked"}.get(n, "ok"))
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=4).start())
    assert report.failures == [] and report.resent == {} and report.requests == {"shop": 4}
    conns = [x.conn for x in s.seen]
    # A "Connection: close" answer: the next request on a new connection; a chunked one keeps it.
    assert conns[1] != conns[0] and conns[1] == conns[2] == conns[3]


# --- reading answers ----------------------------------------------------------------------------


def read(data):
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        answer = await load._read_answer(reader)
        return answer, await reader.read()

    return asyncio.run(go())


def test_read_answer_reads_status_headers_and_body_and_leaves_the_next_answer():
    next_one = b"HTTP/1.1 200 OK\r\n\r\n"
    assert read(b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc" + next_one) == ((204, True), next_one)
    assert read(b"HTTP/1.1 200 OK\r\nconnection: Close\r\nContent-Length: 0\r\n\r\n") == ((200, False), b"")
    assert read(b"HTTP/1.1 200 OK\nTransfer-Encoding: Chunked\n\nA\r\n0123456789\r\n0\r\n\r\nrest") == (
        (200, True),
        b"rest",
    )
    # The answer may end with its headers.
    assert read(b"HTTP/1.1 200 OK\r\nConnection: keep-alive") == ((200, True), b"")
    assert read(b"HTTP/1.1 503 x\r\nX-A: b:c\r\n\r\n") == ((503, True), b"")


@pytest.mark.parametrize(
    "data, what, before_answer",
    [
        (b"", "connection closed before the answer", True),
        (b"HTTP/1.1\r\n\r\n", "answer cut short: IndexError", False),
        (b"HTTP/1.1 abc\r\n\r\n", "answer cut short: ValueError", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "answer cut short: IncompleteReadError", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "answer cut short: ValueError", False),
    ],
)
def test_read_answer_cut_says_whether_anything_came(data, what, before_answer):
    with pytest.raises(load._Cut) as caught:
        read(data)
    assert str(caught.value) == what and caught.value.before_answer is before_answer


def test_the_request_bytes():
    assert load._request("GET", "/", "a.test") == b"GET / HTTP/1.1\r\nHost: a.test\r\nUser-Agent: pyfleet-load\r\n\r\n"
    assert load._request("POST", "/echo", "a.test", b'{"n": 1}') == (
        b"POST /echo HTTP/1.1\r\nHost: a.test\r\nUser-Agent: pyfleet-load\r\n"
        b"Content-Type: application/json\r\nContent-Length: 8\r\n\r\n"
        b'{"n": 1}'
    )


# --- get_json and the report ------------------------------------------------------------------


def test_get_json_returns_the_body_and_raises_on_non_200(site):
    s = site(lambda n, seen, all_seen: "ok" if n == 0 else "502")
    assert load.get_json("127.0.0.1", "shop.test", "/health", port=s.port, timeout=5) == {"path": "/health"}
    assert (s.seen[0].method, s.seen[0].path, s.seen[0].host) == ("GET", "/health", "shop.test")
    with pytest.raises(OSError, match=r"^GET https://shop.test/: HTTP 502$"):
        load.get_json("127.0.0.1", "shop.test", port=s.port, timeout=5)
    assert len(s.connections()) == 2  # a new connection each


def test_report_describes_the_failures_with_their_time():
    report = Report(seconds=12.4)
    report.requests.update({"a": 7, "b": 3})
    report.resent["a"] += 2
    report.latencies = [0.001 * n for n in range(1, 101)]
    at = 1_700_000_000.25  # 22:13:20 UTC
    report.failures = [Failure(at, "a", "GET", "HTTP 502"), Failure(at + 1.7495, "b", "POST", "TimeoutError")]
    assert report.total == 12 and report.failed == 2 and report.p99_ms() == 100.0
    assert report.describe() == (
        "12 requests in 12 s, 2 failed, 2 resent after an idle keepalive close, p99 100.0 ms\n"
        "  22:13:20.250 a GET: HTTP 502\n"
        "  22:13:21.999 b POST: TimeoutError"
    )
    assert report.describe(limit=1).count("\n") == 1
    report.failures = [Failure(at + n, "a", "GET", f"HTTP 50{n}") for n in range(12)]
    assert report.describe().splitlines()[-1] == "  22:13:29.250 a GET: HTTP 509"  # the first ten


def test_p99_of_few_or_no_latencies():
    assert Report().p99_ms() == 0.0
    assert Report(latencies=[0.01234]).p99_ms() == 12.3
    assert Report(latencies=[0.3, 0.1, 0.2]).p99_ms() == 300.0
    assert Report(latencies=[0.001] * 99 + [0.5]).p99_ms() == 500.0
    assert Report(latencies=[0.001] * 199 + [0.5]).p99_ms() == 1.0


def test_stop_before_start_returns_an_empty_report():
    report = Load("127.0.0.1", {"a": "a.test"}).stop()
    assert report.total == 0


def test_the_defaults_are_the_load_balancers_https_port_and_fifteen_seconds():
    import inspect

    # The e2e tests and bench/reliability.py give only the address and the domains.
    get_json = inspect.signature(load.get_json).parameters
    assert (get_json["path"].default, get_json["port"].default, get_json["timeout"].default) == ("/", 443, 15)
    ld = Load("10.0.0.1", {"a": "a.test"})
    assert (ld.port, ld.connections, ld.max_seconds, ld.max_requests, ld.pause) == (443, 4, 300, 100_000, 0.0)
    assert load.REQUEST_TIMEOUT == 15


def test_both_send_the_domain_as_the_tls_server_name(site):
    s = site()
    load.get_json("127.0.0.1", "shop.test", port=s.port, timeout=5)
    finished(Load("127.0.0.1", {"blog": "blog.test"}, connections=1, port=s.port, max_requests=1).start())
    assert s.sni == ["shop.test", "blog.test"]


def test_get_json_gives_up_after_its_timeout(site):
    s = site(lambda n, seen, all_seen: "hang")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        load.get_json("127.0.0.1", "shop.test", port=s.port, timeout=0.3)
    assert time.monotonic() - started < 3


def test_a_tls_handshake_that_never_ends_is_a_timeout_failure(monkeypatch):
    monkeypatch.setattr(load, "REQUEST_TIMEOUT", 0.3)
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        ld = Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=silent.getsockname()[1], max_requests=2)
        report = finished(ld.start())
    assert [(f.method, f.what) for f in report.failures] == [("GET", "TimeoutError"), ("POST", "TimeoutError")]


def test_a_keepalive_connection_the_server_closed_while_idle_is_resent(site):
    # The server answers and then closes; the client's next request, a pause later, finds it closed.
    s = site(lambda n, seen, all_seen: "close-after" if n == 0 else "ok")
    ld = Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=2, pause=0.2)
    report = finished(ld.start())
    assert report.failures == [] and report.resent == {"shop": 1} and report.requests == {"shop": 2}
    assert [x.method for x in s.seen] == ["GET", "POST"] and s.seen[0].conn != s.seen[1].conn


class Broken:
    """A StreamWriter stand-in whose connection is gone."""

    def write(self, data):
        pass

    async def drain(self):
        raise ConnectionResetError("Connection lost")

    def close(self):
        pass


def test_a_request_that_cannot_be_written_is_cut_before_the_answer(monkeypatch):
    ld = Load("127.0.0.1", {"shop": "shop.test"})
    opened = []

    async def open_(domain):
        opened.append(domain)
        return asyncio.StreamReader(), Broken()

    monkeypatch.setattr(ld, "_open", open_)
    with pytest.raises(load._Cut) as caught:
        asyncio.run(ld._send(None, "shop.test", b"GET / HTTP/1.1\r\n\r\n"))
    assert str(caught.value) == "ConnectionResetError: Connection lost" and caught.value.before_answer is True
    assert opened == ["shop.test"]


def test_a_connection_error_while_waiting_for_the_answer_is_cut_before_the_answer():
    async def go():
        reader = asyncio.StreamReader()
        reader.set_exception(ConnectionResetError("reset by peer"))
        await load._read_answer(reader)

    with pytest.raises(load._Cut) as caught:
        asyncio.run(go())
    assert str(caught.value) == "ConnectionResetError: reset by peer" and caught.value.before_answer is True


def test_only_2xx_answers_count_as_answered(site):
    s = site(lambda n, seen, all_seen: ("204", "299", "300", "404")[n])
    report = finished(Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=4).start())
    assert report.requests == {"shop": 2}
    assert [f.what for f in report.failures] == ["HTTP 300", "HTTP 404"]


def test_close_closes_the_writer_and_ignores_its_errors():
    class Writer:
        closed = 0

        def close(self):
            Writer.closed += 1
            raise OSError("already broken")

    Load._close(None)
    Load._close((None, Writer()))
    assert Writer.closed == 1


def test_the_load_runs_in_a_daemon_thread_named_for_it(site):
    s = site()
    ld = Load("127.0.0.1", {"shop": "shop.test"}, connections=1, port=s.port, max_requests=1).start()
    assert (ld._thread.name, ld._thread.daemon) == ("pyfleet-load", True)  # a stuck load never holds the process
    finished(ld)


def test_stop_waits_for_a_stuck_load_a_bounded_time(monkeypatch):
    import threading as th

    monkeypatch.setattr(load, "REQUEST_TIMEOUT", -4.7)  # stop() waits REQUEST_TIMEOUT + 5 s: 0.3 s here
    ld = Load("127.0.0.1", {})
    never = th.Event()
    ld._thread = th.Thread(target=never.wait, args=(10,), daemon=True)
    ld._thread.start()
    started = time.monotonic()
    ld.stop()
    assert 0.25 <= time.monotonic() - started < 1.2
    never.set()
