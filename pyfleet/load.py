"""A bounded HTTPS load through the load balancer, recording every failure with its time.

Used by ``bench/reliability.py`` and the e2e tests: while a deploy, a rollback or a
fault happens, keepalive connections per app send ``GET /`` and ``POST /echo``
(with a JSON body) in turn, and every answer that is not 2xx and every socket
error is kept with its wall-clock time, so a failure can be matched with the
moment a host was drained, reloaded or stopped.

Bounded by construction: a load stops at ``stop()``, after ``max_seconds`` or
after ``max_requests`` per connection, whichever comes first. It sends only to
the address it is given (the lab's load balancer).

What counts as failed is what a browser would show its user: a non-2xx answer,
a timeout, a refused or reset connection, or an answer cut short. One thing is
not a failure: a *reused* keepalive connection that the server closed before any
byte of the answer (nginx closes idle keepalive connections when it reloads;
RFC 9112 9.3.1 lets a client resend then, and browsers do, for every method).
Such requests are sent again once on a new connection and counted as
``resent``; an error on that second try is a failure.
"""

import asyncio
import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

HARD_LIMIT_SECONDS = 900  # no load runs longer than this, whatever it is asked
REQUEST_TIMEOUT = 15


@dataclass
class Failure:
    at: float  # wall-clock time (time.time())
    app: str
    method: str
    what: str  # "HTTP 502" or the socket error


@dataclass
class Report:
    """What a load saw, per app and in all."""

    started: float = 0.0
    seconds: float = 0.0
    requests: Counter = field(default_factory=Counter)  # app -> answered requests
    resent: Counter = field(default_factory=Counter)  # app -> resent after an idle close
    failures: list = field(default_factory=list)
    latencies: list = field(default_factory=list)  # seconds, every answered request

    @property
    def total(self):
        return sum(self.requests.values()) + len(self.failures)

    @property
    def failed(self):
        return len(self.failures)

    def p99_ms(self):
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1)

    def describe(self, limit=10):
        """One line, then the first ``limit`` failures with their time: for assertion messages."""
        head = (
            f"{self.total} requests in {self.seconds:.0f} s, {self.failed} failed, "
            f"{sum(self.resent.values())} resent after an idle keepalive close, p99 {self.p99_ms()} ms"
        )
        lines = [head] + [
            f"  {time.strftime('%H:%M:%S', time.gmtime(f.at))}.{int(f.at % 1 * 1000):03d} {f.app} {f.method}: {f.what}"
            for f in self.failures[:limit]
        ]
        return "\n".join(lines)


def get_json(address, domain, path="/", port=443, timeout=15):
    """One GET through the load balancer on a new connection; the JSON body (raises on non-200)."""
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # the lab's certificate is self-signed
    sock = tls.wrap_socket(socket.create_connection((address, port), timeout=timeout), server_hostname=domain)
    conn = http.client.HTTPSConnection(domain, port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request("GET", path, headers={"Host": domain})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"GET https://{domain}{path}: HTTP {response.status}")
        return json.loads(body)
    finally:
        conn.close()


class _Cut(Exception):
    """The connection ended; ``before_answer`` tells whether any answer byte came."""

    def __init__(self, what, before_answer):
        super().__init__(what)
        self.before_answer = before_answer


def _request(method, path, domain, body=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: {domain}\r\nUser-Agent: pyfleet-load\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _read_answer(reader):
    """(status, keep_alive) of one HTTP/1.1 answer, its body read whole."""
    try:
        line = await reader.readline()
    except (ConnectionError, ssl.SSLError) as exc:
        raise _Cut(f"{type(exc).__name__}: {exc}", True) from None
    if not line:
        raise _Cut("connection closed before the answer", True)
    try:
        status = int(line.split()[1])
        headers = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        keep = headers.get("connection", "").lower() != "close"
        return status, keep
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        raise _Cut(f"answer cut short: {type(exc).__name__}", False) from None


class Load:
    """Keepalive HTTPS load on some apps through one load balancer address.

    ``apps``: ``{app name: domain}``. ``connections``: per app. Use as a context
    manager or call ``start()`` and ``stop()``; ``stop()`` returns the Report.
    """

    def __init__(self, address, apps, connections=4, port=443, max_seconds=300, max_requests=100_000, pause=0.0):
        self.address, self.port, self.apps = address, port, dict(apps)
        self.connections = connections
        self.max_seconds = min(max_seconds, HARD_LIMIT_SECONDS)
        self.max_requests = max_requests
        self.pause = pause  # seconds between two requests of a connection (0: as fast as answered)
        self.report = Report()
        self._stop = None
        self._loop = None
        self._thread = None
        self._tls = ssl.create_default_context()
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE  # the lab's certificate is self-signed

    async def _open(self, domain):
        return await asyncio.wait_for(
            asyncio.open_connection(self.address, self.port, ssl=self._tls, server_hostname=domain), REQUEST_TIMEOUT
        )

    async def _send(self, conn, domain, data):
        """Send one request on ``conn`` (opened when None); returns (conn, status, seconds)."""
        if conn is None:
            conn = await self._open(domain)
        reader, writer = conn
        started = time.monotonic()
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, ssl.SSLError) as exc:
            raise _Cut(f"{type(exc).__name__}: {exc}", True) from None
        status, keep = await asyncio.wait_for(_read_answer(reader), REQUEST_TIMEOUT)
        if not keep:
            writer.close()
            conn = None
        return conn, status, time.monotonic() - started

    async def _connection(self, app, domain, number):
        conn, sent = None, 0
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and sent < self.max_requests and time.monotonic() < deadline:
            method = "GET" if sent % 2 == 0 else "POST"
            body = json.dumps({"conn": number, "n": sent, "pad": "x" * 64}).encode() if method == "POST" else b""
            data = _request(method, "/" if method == "GET" else "/echo", domain, body)
            sent += 1
            attempt_reused = conn is not None
            try:
                try:
                    conn, status, seconds = await self._send(conn, domain, data)
                except _Cut as cut:
                    if not (attempt_reused and cut.before_answer):
                        raise
                    # An idle keepalive connection closed by the server: resend on a new one.
                    self._close(conn)
                    conn = None
                    self.report.resent[app] += 1
                    conn, status, seconds = await self._send(None, domain, data)
            except (TimeoutError, _Cut, OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
                self._close(conn)
                conn = None
                what = str(exc) if isinstance(exc, _Cut) else f"{type(exc).__name__}: {exc}".rstrip(": ")
                self.report.failures.append(Failure(time.time(), app, method, what))
                await asyncio.sleep(0.05)
                continue
            self.report.latencies.append(seconds)
            if 200 <= status < 300:
                self.report.requests[app] += 1
            else:
                self.report.failures.append(Failure(time.time(), app, method, f"HTTP {status}"))
            if self.pause:
                await asyncio.sleep(self.pause)
        self._close(conn)

    @staticmethod
    def _close(conn):
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail any way
                conn[1].close()

    async def _main(self):
        self._stop = asyncio.Event()
        self._ready.set()
        tasks = [
            asyncio.create_task(self._connection(app, domain, n))
            for app, domain in self.apps.items()
            for n in range(self.connections)
        ]
        await asyncio.gather(*tasks)

    def _run(self):
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    def start(self):
        self._ready = threading.Event()
        self.report = Report(started=time.time())
        self._thread = threading.Thread(target=self._run, name="pyfleet-load", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self):
        """Stop the load (its connections finish their current request) and return the Report."""
        if self._loop and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(REQUEST_TIMEOUT + 5)
        self.report.seconds = time.time() - self.report.started
        return self.report

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
