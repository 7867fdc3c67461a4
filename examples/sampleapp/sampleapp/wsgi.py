"""The sample WSGI app (Flask): identity, health, echo, and a Celery round trip.

Serve it with ``gunicorn sampleapp.wsgi:app``.
"""

import os
import socket

from flask import Flask, jsonify, request

from sampleapp.version import VERSION

app = Flask(__name__)

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
