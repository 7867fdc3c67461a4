"""The sample Celery app and its tasks.

Configured from the environment, so one unit file template fits every host:

- ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``: where tasks and results go;
- ``CELERY_CONFIG_MODULE`` (optional): a module pyfleet generates from the
  inventory (``task_routes``, acks, prefetch, time limits...);
- ``PYFLEET_TICK_LOG``: the file ``tick`` (the beat task) appends to.

Run a worker with ``celery -A sampleapp.tasks:app worker``.
"""

import os
import socket
import time
from datetime import UTC, datetime

from celery import Celery

# Only pass what the environment sets: an explicit value here would override
# the generated config module.
_settings = {
    key: os.environ[var]
    for key, var in (("broker", "CELERY_BROKER_URL"), ("backend", "CELERY_RESULT_BACKEND"))
    if os.environ.get(var)
}
app = Celery("sampleapp", **_settings)
app.config_from_envvar("CELERY_CONFIG_MODULE", silent=True)


def _where(task):
    """Which worker node, host and queue ran ``task``."""
    delivery = task.request.delivery_info or {}
    return {
        "node": task.request.hostname,
        "host": socket.gethostname(),
        "queue": delivery.get("routing_key"),
    }


@app.task(bind=True, name="sampleapp.tasks.whoami")
def whoami(self):
    """Say which worker node, host and queue ran this task."""
    return _where(self)


@app.task(bind=True, name="sampleapp.tasks.sleep")
def sleep(self, seconds=1.0):
    """Sleep ``seconds`` (for tests of warm shutdown and task loss), then say where."""
    time.sleep(float(seconds))
    return _where(self)


@app.task(name="sampleapp.tasks.noop")
def noop():
    """Do nothing: for throughput and routing tests."""
    return None


@app.task(bind=True, name="sampleapp.tasks.tick")
def tick(self):
    """Beat's task: append "<UTC time> <host>" to PYFLEET_TICK_LOG, then say where."""
    path = os.environ.get("PYFLEET_TICK_LOG", "/tmp/pyfleet-ticks.log")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{stamp} {socket.gethostname()}\n")
    return _where(self)
