"""The sample ASGI app, written against the bare ASGI spec (no framework needed).

Serve it with ``uvicorn sampleapp.asgi:app`` or gunicorn's UvicornWorker.
"""

import json
import os
import socket

from sampleapp.version import VERSION


def identity():
    """What answers ``/``: which app, version, host and release served this request."""
    return {
        "app": "sampleapp-asgi",
        "version": VERSION,
        "host": socket.gethostname(),
        "release": os.environ.get("PYFLEET_RELEASE", ""),
    }


async def _send(send, status, body, content_type="application/json"):
    """Send a whole response in one body message."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive):
    """Read the whole request body."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive, send):
    """Accept startup and shutdown so servers that speak lifespan are happy."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    """Routes: GET /, GET /healthz, GET /client, POST /echo; anything else is 404 or 405."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/" and method in ("GET", "HEAD"):
        await _send(send, 200, json.dumps(identity()).encode())
    elif path == "/healthz" and method in ("GET", "HEAD"):
        await _send(send, 200, b"ok", "text/plain; charset=utf-8")
    elif path == "/client" and method in ("GET", "HEAD"):
        # uvicorn --forwarded-allow-ips (set by pyfleet) fills client and scheme from nginx's headers.
        headers = dict(scope["headers"])
        body = {
            "remote_addr": (scope.get("client") or [None])[0],
            "scheme": scope["scheme"],
            "host": headers.get(b"host", b"").decode(),
            "x_forwarded_for": headers.get(b"x-forwarded-for", b"").decode() or None,
        }
        await _send(send, 200, json.dumps(body).encode())
    elif path == "/echo" and method == "POST":
        raw = await _read_body(receive)
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            data = None
        await _send(send, 200, json.dumps(data).encode())
    elif path in ("/", "/healthz", "/echo", "/client"):
        await _send(send, 405, json.dumps({"error": "method not allowed"}).encode())
    else:
        await _send(send, 404, json.dumps({"error": "not found"}).encode())
