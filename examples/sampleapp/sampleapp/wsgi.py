"""The sample WSGI app (Flask): identity, health, echo, and a Celery round trip.

Serve it with ``gunicorn sampleapp.wsgi:app``.
"""

import os
import socket

from flask import Flask, jsonify, request
from werkzeug.middleware.proxy_fix import ProxyFix

from sampleapp.version import VERSION

app = Flask(__name__)
# Behind pyfleet, nginx on the web host sets X-Forwarded-For/-Proto/-Host/-Port once,
# from the load balancer's (trusted) headers or the request itself: one proxy hop.
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)

# Tasks that POST /tasks/<name> may send; anything else is a 404, so the
# endpoint cannot be used to run arbitrary task names.
TASKS = ("whoami", "sleep", "noop", "tick")
RESULT_TIMEOUT = 20


def identity(kind="sampleapp-wsgi"):
    """What answers ``/``: which app, version, host and release served this request."""
    return {
        "app": kind,
        "version": VERSION,
        "host": socket.gethostname(),
        "release": os.environ.get("PYFLEET_RELEASE", ""),
    }


@app.get("/")
def index():
    """Identify the app, host and release."""
    return jsonify(identity())


@app.get("/healthz")
def healthz():
    """Health check used by the deploy gate and the load balancer."""
    return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/client")
def client():
    """What the app knows of the client: its address, and the scheme and host it used."""
    return jsonify(
        remote_addr=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
        x_forwarded_for=request.headers.get("X-Forwarded-For"),
    )


@app.post("/echo")
def echo():
    """Return the JSON body as sent (a POST that must not fail during deploys)."""
    return jsonify(request.get_json(silent=True))


@app.post("/tasks/<name>")
def run_task(name):
    """Send task ``sampleapp.tasks.<name>`` and wait up to 20 s for its result.

    JSON body (optional): ``{"args": [...], "kwargs": {...}, "queue": "q"}``.
    Without ``queue`` the producer's generated ``task_routes`` pick the queue,
    which is what the worker catalogue tests exercise.
    """
    if name not in TASKS:
        return jsonify(error=f"unknown task {name!r}; one of {', '.join(TASKS)}"), 404
    body = request.get_json(silent=True) or {}
    options = {"queue": body["queue"]} if body.get("queue") else {}
    # Imported here so the web app starts, and serves everything else, without
    # Celery configured or a broker reachable.
    from celery.exceptions import TimeoutError as CeleryTimeout

    from sampleapp.tasks import app as celery_app

    full_name = f"sampleapp.tasks.{name}"
    try:
        result = celery_app.send_task(full_name, args=body.get("args", []), kwargs=body.get("kwargs", {}), **options)
        value = result.get(timeout=RESULT_TIMEOUT)
    except CeleryTimeout:
        return jsonify(task=full_name, error=f"no result within {RESULT_TIMEOUT} s"), 504
    except Exception as exc:  # broker down, task raised: report, don't 500 with a traceback
        return jsonify(task=full_name, error=f"{type(exc).__name__}: {exc}"), 502
    return jsonify(task=full_name, id=result.id, result=value)
