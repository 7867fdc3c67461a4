"""Reliability under load and faults, on the lab, through the load balancer.

While a restart or a host failure happens, a bounded keepalive HTTPS load
(``under_load`` in conftest.py, pyfleet/load.py: GET / and POST /echo in turn,
WSGI and ASGI apps) runs through the load balancer, and every answer that is not
2xx and every connection error counts as a failed request. An idle keepalive
connection that a reload closed is sent again once, as browsers do, and is not a
failure. Deploys and rollbacks under the same load: test_rollback.py.
The Celery tests kill a worker's main process with tasks in flight.
"""

import ast
import json
import subprocess
import time
from pathlib import Path

from test_celery import APP as WORKER_APP, celery_python, task_result, unit_started

from pyfleet import lab as labmod
from pyfleet.load import get_json
from pyfleet.podman import podman
from pyfleet.shell import VENV_BIN

ROOT = Path(__file__).resolve().parents[2]
APPS = {"hello": "hello.lab.test", "hello-async": "hello-async.lab.test"}


def fab(inv, *args):
    proc = subprocess.run(
        [str(VENV_BIN / "fab"), *args, "--inventory", str(inv.path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, f"fab {' '.join(args)}: {proc.stdout[-1500:]}{proc.stderr[-800:]}"
    return proc.stdout


def test_no_request_fails_during_fab_restart_of_one_app(inv, under_load):
    # hello-async is not restarted, but its hosts are drained in turn.
    _, report = under_load(lambda: fab(inv, "restart", "hello"))
    assert report.failed == 0, report.describe()


def test_a_web_host_stopped_hard_costs_no_later_request_and_rejoins_by_itself(
    inv, lab, lb_address, under_load, host_run
):
    the_lab = labmod.Lab(inv)
    host = sorted(inv.groups["web"])[-1]
    marks = {}

    def stop_and_start():
        podman("stop", "-t", "10", the_lab.container(host))
        marks["gone"] = time.time()
        time.sleep(8)
        podman("start", the_lab.container(host))
        labmod.wait_for_ssh(the_lab, host, lab["addresses"][host])
        marks["back"] = time.time()

    _, report = under_load(stop_and_start, settle=3)
    later = [f for f in report.failures if f.at > marks["gone"]]
    assert not later, report.describe()
    assert labmod.address(the_lab, host) == lab["addresses"][host], "the host came back on another address"
    # Every pyfleet service came back with no action, and the load balancer sends to the host again.
    deadline = time.time() + 60
    while time.time() < deadline:
        state = host_run(host, "systemctl is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    failed = host_run(host, "systemctl --failed --no-legend --plain").stdout.strip()
    assert not failed, f"{host}: failed units after its restart: {failed}"
    for app in APPS:
        assert host_run(host, f"systemctl is-active 'pyfleet-{app}@*'").stdout.split()[0] == "active"
    # The load balancer tries the host again every fail_timeout (5 s). Allow for its
    # neighbour cache too: the restarted container has a new MAC address behind the old
    # IP, and a stale entry is re-probed only after tens of seconds (CI once took > 30 s).
    hosts_seen = set()
    deadline = time.time() + 90
    while host not in hosts_seen and time.time() < deadline:
        hosts_seen.add(get_json(lb_address, APPS["hello"])["host"])
        time.sleep(0.05)
    lb = sorted(inv.groups["loadbalancers"])[0]
    why = host_run(lb, "tail -n 3 /var/log/nginx/error.log; ip neigh").stdout
    assert host in hosts_seen, f"{host} never answered through the load balancer again: {hosts_seen}; on {lb}: {why}"


# ---- Celery: a worker's main process killed with tasks in flight ----------------------------


def visibility_timeout(host_run, host):
    text = host_run(host, f"cat /srv/{WORKER_APP}/shared/celery/pyfleet_celeryconfig.py").stdout
    line = next(line for line in text.splitlines() if line.startswith("broker_transport_options"))
    return int(ast.literal_eval(line.split("=", 1)[1].strip())["visibility_timeout"])


def test_a_killed_worker_restarts_at_once_and_a_deploy_while_1000_tasks_drain_loses_none(inv, host_run, run_playbook):
    host = next(
        h for h in sorted(inv.groups["workers"]) if "default" in (inv.hosts[h].get("celery_worker_types") or [])
    )
    unit = f"pyfleet-{WORKER_APP}-worker@default.service"
    bound = visibility_timeout(host_run, host)
    assert bound <= 300, f"visibility timeout {bound} s: the lab's limits should keep it in minutes"
    # 1,000 short tasks on the default queue, their ids kept on the host.
    celery_python(
        host_run,
        host,
        """
ids = [app.send_task('sampleapp.tasks.sleep', args=[0.05], queue='default').id for _ in range(1000)]
open('/root/pyfleet-task-ids', 'w').write('\\n'.join(ids))
""",
    )
    # A pool child killed, then the main process (tasks in flight on both occasions).
    child = host_run(host, f"pgrep -P $(systemctl show -p MainPID --value {unit}) | head -1").stdout.strip()
    assert child.isdigit(), "the default worker has no pool child"
    host_run(host, f"kill -KILL {child}")
    time.sleep(1)
    main = host_run(host, f"systemctl show -p MainPID --value {unit}").stdout.strip()
    restart_sec = int(host_run(host, f"systemctl show -p RestartUSec --value {unit}").stdout.strip().rstrip("s"))
    killed = time.time()
    assert host_run(host, f"kill -KILL {main}").rc == 0
    while time.time() < killed + restart_sec + 15:
        now = host_run(host, f"systemctl show -p MainPID,ActiveState --value {unit}").stdout.split()
        if now[0] not in ("0", main) and now[1] == "active":
            break
        time.sleep(0.5)
    restarted = time.time() - killed
    assert restarted <= restart_sec + 10, f"{unit} was not running again {restarted:.0f} s after its main process died"
    # A deploy of the worker hosts (warm restarts) while the tasks drain, and while a long
    # task runs on the io worker (the sample app routes sleep there unless told otherwise).
    long_task = 45
    release_before = host_run(host, f"readlink /srv/{WORKER_APP}/current").stdout.strip()
    sent = time.time()
    long_id = celery_python(host_run, host, f"print(app.send_task('sampleapp.tasks.sleep', args=[{long_task}]).id)")
    celery_python(
        host_run,
        host,
        f"""
import time
from celery.result import AsyncResult
deadline = time.time() + 20
while AsyncResult('{long_id}', app=app).state == 'PENDING' and time.time() < deadline:
    active = app.control.inspect(timeout=1).active() or {{}}
    if any(t['id'] == '{long_id}' for tasks in active.values() for t in tasks):
        break
    time.sleep(0.5)
""",
    )
    run_playbook("deploy", "-e", "deploy_hosts=workers", "-e", "app_force_release=true")
    assert host_run(host, f"readlink /srv/{WORKER_APP}/current").stdout.strip() != release_before, (
        "the deploy made no new release on the worker host"
    )
    # Every task completes: the ones the dead worker held come back after the visibility timeout.
    done = json.loads(
        celery_python(
            host_run,
            host,
            f"""
import json, time
from celery.result import AsyncResult
ids = open('/root/pyfleet-task-ids').read().split()
deadline = time.time() + {bound + 90}
pending = set(ids)
while pending and time.time() < deadline:
    pending = {{i for i in pending if AsyncResult(i, app=app).state != 'SUCCESS'}}
    time.sleep(2)
print(json.dumps({{'pending': sorted(pending)[:5], 'count': len(pending), 'seconds': round(time.time() - {killed})}}))
""",
        )
    )
    assert done["count"] == 0, f"{done['count']} of 1000 tasks never completed (bound {bound} s): {done}"
    # The long task finished on the io worker it started on, and that worker restarted only after it (warm).
    answer = task_result(host_run, host, long_id, timeout=150)
    assert answer["node"] == f"io@{answer['host']}", answer
    assert unit_started(host_run, answer["host"], f"pyfleet-{WORKER_APP}-worker@io.service") >= sent + long_task - 2


def test_a_broker_restart_loses_no_task_and_every_worker_reconnects(inv, host_run):
    host = next(
        h for h in sorted(inv.groups["workers"]) if "default" in (inv.hosts[h].get("celery_worker_types") or [])
    )
    broker = sorted(inv.groups["brokers"])[0]
    bound = visibility_timeout(host_run, host)
    # A producer sends a task every 30 ms for 8 s, in the background, while the broker restarts.
    host_run(
        host,
        f"""cat > /root/pyfleet-producer.py <<'PYFLEET_EOF'
import json, time
from sampleapp.tasks import app
ids, errors, started = [], [], time.time()
while time.time() - started < 8:
    try:
        ids.append(app.send_task('sampleapp.tasks.sleep', args=[0.01], queue='default').id)
    except Exception as exc:
        errors.append(f'{{time.time() - started:.1f}} s: {{type(exc).__name__}}: {{exc}}')
    time.sleep(0.03)
json.dump({{'ids': ids, 'errors': errors}}, open('/root/pyfleet-producer.json.tmp', 'w'))
import os; os.replace('/root/pyfleet-producer.json.tmp', '/root/pyfleet-producer.json')
PYFLEET_EOF
rm -f /root/pyfleet-producer.json
(set -a; . /etc/pyfleet/celery/{WORKER_APP}.env; set +a; cd /srv/{WORKER_APP}/current &&
 nohup venv/bin/python /root/pyfleet-producer.py >/root/pyfleet-producer.log 2>&1 &)""",
    )
    time.sleep(3)
    assert host_run(broker, "systemctl restart redis-server").rc == 0
    deadline = time.time() + 60
    while host_run(host, "test -f /root/pyfleet-producer.json").rc != 0 and time.time() < deadline:
        time.sleep(1)
    sent = json.loads(host_run(host, "cat /root/pyfleet-producer.json").stdout)
    assert not sent["errors"], f"sending failed during the broker restart: {sent['errors'][:3]}"
    assert len(sent["ids"]) > 100
    expected = {f"{t}@{h}" for h, v in inv.hosts.items() for t in v.get("celery_worker_types") or []}
    done = json.loads(
        celery_python(
            host_run,
            host,
            f"""
import json, time
from celery.result import AsyncResult
pending = set(json.load(open('/root/pyfleet-producer.json'))['ids'])
deadline = time.time() + {bound + 60}
while pending and time.time() < deadline:
    pending = {{i for i in pending if AsyncResult(i, app=app).state != 'SUCCESS'}}
    time.sleep(2)
nodes, deadline = set(), time.time() + 30
while len(nodes) < {len(expected)} and time.time() < deadline:  # control replies resume a little later
    nodes |= {{n for reply in app.control.ping(timeout=2) or [] for n in reply}}
print(json.dumps({{'count': len(pending), 'nodes': sorted(nodes)}}))
""",
        )
    )
    # Kombu's Redis transport takes a task off the queue (BRPOP) and records it as
    # unacknowledged in a second step: a task taken at the instant Redis stops is in
    # neither place, and goes with the worker (1 of about 200 in 2 of about 15 CI runs;
    # README, Reliability). One such task is what Redis can lose; a real loss (no
    # persistence, a producer that gives up) costs every task of the restart's second
    # (about 30 here).
    assert done["count"] <= 1, f"{done['count']} of {len(sent['ids'])} tasks never completed (bound {bound} s)"
    assert expected <= set(done["nodes"]), f"workers that did not reconnect: {sorted(expected - set(done['nodes']))}"
