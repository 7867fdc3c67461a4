"""The Celery tier end to end on the lab, through the whole stack.

Tasks go in through the web app (POST /tasks/<name> via the load balancer over
HTTPS) or, when a test must outlive the app's 20 s wait, from a worker host
with the release venv and the generated Celery environment. Each test checks
one behaviour the inventory promises: placement of worker types, one beat,
re-delivery of a task whose pool child dies, Flower behind its password. Warm
restarts on a deploy (a running task finishes first): test_reliability.py.
"""

import base64
import http.client
import itertools
import json
import socket
import ssl
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HOST_VARS = ROOT / "inventory" / "lab" / "host_vars"
WORKERS_YML = ROOT / "inventory" / "lab" / "group_vars" / "all" / "workers.yml"
APP = "hello"
TICK_LOG = "/srv/hello/shared/ticks.log"


@pytest.fixture(scope="module")
def assignment(inv):
    """{worker type: set of hosts the inventory assigns it to}."""
    types = {}
    for host in inv.groups.get("workers", []):
        path = HOST_VARS / f"{host}.yml"
        data = yaml.safe_load(path.read_text()) if path.exists() else {}
        for kind in (data or {}).get("celery_worker_types", []):
            types.setdefault(kind, set()).add(host)
    assert {"default", "io", "cpu"} <= set(types), types
    return types


@pytest.fixture(scope="module")
def beat_every():
    """The tick's period in seconds (celery_beat_schedule in the lab inventory)."""
    return float(yaml.safe_load(WORKERS_YML.read_text())["celery_beat_schedule"]["tick"]["every"])


def celery_python(host_run, host, code, timeout=None):
    """Run Python ``code`` on ``host`` in the app's current release, with the Celery environment.

    ``timeout``: seconds before the process is stopped (``timeout`` on the host).
    """
    command = (
        f"set -a; . /etc/pyfleet/celery/{APP}.env; set +a; cd /srv/{APP}/current && "
        f"{'timeout ' + str(timeout) + ' ' if timeout else ''}"
        f"venv/bin/python - <<'PYFLEET_EOF'\nfrom sampleapp.tasks import app\n{code}\nPYFLEET_EOF\n"
    )
    result = host_run(host, command)
    assert result.rc == 0, f"on {host}: {result.stderr or result.stdout}"
    return result.stdout.strip()


def task_result(host_run, host, task_id, timeout):
    """The result of task ``task_id`` (the sample app's tasks return JSON-able dicts), read on ``host``."""
    code = f"""
import json
from celery.result import AsyncResult
print(json.dumps(AsyncResult('{task_id}', app=app).get(timeout={timeout})))
"""
    return json.loads(celery_python(host_run, host, code))


def unit_started(host_run, host, unit):
    """When ``unit``'s current main process started (epoch seconds; 0 if it does not run there)."""
    out = host_run(
        host, f't=$(systemctl show -p ExecMainStartTimestamp --value {unit}); [ -n "$t" ] && date -d "$t" +%s'
    )
    return int(out.stdout.strip() or 0)


def test_beat_ticks_once_per_period_across_the_cluster(inv, host_run, beat_every, assignment):
    # The ticks of the last 25 s since beat and the cpu workers (which run tick) last
    # started: the log holds them already, so the test waits only for what is missing.
    # First in this file: the next test runs tick itself, six times at once.
    window = 25
    started = [unit_started(host_run, h, f"pyfleet-{APP}-beat.service") for h in inv.groups["workers"]]
    started += [unit_started(host_run, h, f"pyfleet-{APP}-worker@cpu.service") for h in assignment["cpu"]]
    end = time.time()
    start = max(end - window, max(started) + beat_every)
    if end - start < window:
        time.sleep(start + window - end)
        end = start + window
    stamps = []
    for host in inv.groups["workers"]:
        out = host_run(host, f"cat {TICK_LOG} 2>/dev/null || true").stdout
        for line in out.splitlines():
            stamp = datetime.fromisoformat(line.split()[0]).timestamp()
            if start <= stamp <= end:
                stamps.append(stamp)
    stamps.sort()
    low, high = int(window // beat_every), int(window // beat_every) + 1
    assert low <= len(stamps) <= high, f"{len(stamps)} ticks in {window} s with every={beat_every}: {stamps}"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(g >= beat_every / 2 for g in gaps), f"ticks too close (two beats?): {gaps}"


def test_tasks_of_each_type_run_only_on_their_hosts(post_task, assignment):
    # whoami has no route (the default type); sleep is routed to io, tick to cpu.
    cases = {"whoami": ("default", {}), "sleep": ("io", {"args": [0.05]}), "tick": ("cpu", {})}
    for task, (kind, body) in cases.items():
        seen = set()
        for _ in range(6):
            status, answer = post_task(task, body)
            assert status == 200, answer
            where = answer["result"]
            assert where["host"] in assignment[kind], f"{task} ({kind}) ran on {where}; expected {assignment[kind]}"
            assert where["node"] == f"{kind}@{where['host']}", where
            assert where["queue"] == kind, where
            seen.add(where["host"])
        assert seen, task


def test_a_task_whose_pool_child_is_killed_runs_again(inv, host_run, assignment):
    host = sorted(assignment["default"])[0]
    seconds = 12
    sent = time.time()
    task_id = celery_python(
        host_run, host, f"print(app.send_task('sampleapp.tasks.sleep', args=[{seconds}], queue='default').id)"
    )
    pid = celery_python(
        host_run,
        host,
        f"""
import time
deadline = time.time() + 20
pid = None
while pid is None and time.time() < deadline:
    active = app.control.inspect(destination=['default@{host}'], timeout=1).active() or {{}}
    pid = next((t['worker_pid'] for tasks in active.values() for t in tasks if t['id'] == '{task_id}'), None)
    time.sleep(0.3)
print(pid)
""",
    )
    assert pid.isdigit(), f"the task never became active on default@{host}"
    time.sleep(2)
    killed = time.time()
    assert host_run(host, f"kill -KILL {pid}").rc == 0
    answer = task_result(host_run, host, task_id, timeout=90)
    done = time.time()
    assert answer["node"] == f"default@{host}", answer
    # Run again from the start after the kill, not finished by the killed child.
    assert done - killed >= seconds - 1, (sent, killed, done)


def test_flower_through_the_load_balancer_needs_the_password_and_sees_every_node(inv, lb_address):
    settings = yaml.safe_load(WORKERS_YML.read_text())
    domain, user = settings["celery_flower_domain"], settings["celery_flower_users"][0]

    def get(auth=None):
        conn = http.client.HTTPSConnection(lb_address, 443, timeout=20, context=ssl._create_unverified_context())
        conn.sock = ssl._create_unverified_context().wrap_socket(
            socket.create_connection((lb_address, 443), timeout=20), server_hostname=domain
        )
        headers = {"Host": domain}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        conn.request("GET", "/api/workers?refresh=1", headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    assert get()[0] == 401
    assert get(f"{user['name']}:wrong")[0] == 401
    status, body = get(f"{user['name']}:{user['password']}")
    assert status == 200, body[:200]
    expected = {f"{t}@{h}" for h, v in inv.hosts.items() for t in v.get("celery_worker_types", [])}
    assert expected <= set(json.loads(body)), body[:300]
