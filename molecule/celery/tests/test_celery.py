"""What a user of the celery_worker and celery_beat roles notices on the worker hosts.

The fleet of molecule.yml: the Debian 12 host is the broker and runs worker
types default and io, and beat; the Debian 13 host runs type cpu only and
reaches the broker on the other host. Every test runs on both hosts, against
what that host should run (HOSTS); the tasks are sent from each host in turn,
so each host also acts as a producer whose routes send tasks across the fleet.
"""

import json
import re
import time

import pytest
import testinfra

BOOKWORM = "pyfleet-molecule-celery"
TRIXIE = "pyfleet-molecule-celery-trixie"
# The platforms of molecule.yml, reached with `podman exec`: testinfra's ansible
# backend would run every command through an Ansible module, ten times slower.
testinfra_hosts = [f"podman://{name}" for name in (BOOKWORM, TRIXIE)]

# Each host's Debian suite, the Python of its release venv, its worker types and
# whether it runs beat and a Flower (molecule.yml's host_vars).
HOSTS = {
    BOOKWORM: {"suite": "bookworm", "python": "3.11", "types": ["default", "io"], "beat": True, "flower": True},
    TRIXIE: {"suite": "trixie", "python": "3.13", "types": ["cpu"], "beat": False, "flower": True},
}
# Every worker node of the fleet: <type>@<inventory host>.
NODES = sorted(f"{t}@{name}" for name, spec in HOSTS.items() for t in spec["types"])
# The catalogue's hard time limits; a unit's stop timeout is 30 s longer (pyfleet/catalogue.py).
TIME_LIMITS = {"default": 60, "io": 30, "cpu": 45}
WORKER = "pyfleet-hello-worker@{}.service"
BEAT = "pyfleet-hello-beat.service"
# Both hosts run a Flower: the fleet's on Debian 12, a standalone one on Debian 13 (test_flower.py).
FLOWER = "pyfleet-hello-flower.service"
# Task -> (its arguments, the worker type that must run it, that type's host).
TASKS = {
    "sampleapp.tasks.sleep": ([0.1], "io", BOOKWORM),  # celery_task_routes
    "sampleapp.tasks.whoami": ([], "cpu", TRIXIE),  # celery_task_routes: the Debian 13 host
    "sampleapp.tasks.tick": ([], "default", BOOKWORM),  # not routed: celery_task_default_type
}
# The type each host restarts in the last test.
RESTARTED = {BOOKWORM: "io", TRIXIE: "cpu"}


def _units(spec):
    """The Celery units a host runs."""
    return (
        [WORKER.format(t) for t in spec["types"]]
        + ([BEAT] if spec["beat"] else [])
        + ([FLOWER] if spec["flower"] else [])
    )


def _python(host, code, *args):
    """Run ``code`` with the release's Python and the workers' environment; return its JSON output."""
    script = "set -a; . /etc/pyfleet/celery/hello.env; set +a; cd /srv/hello/current; venv/bin/python -c %s"
    result = host.run(script + " %s" * len(args), code, *args)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _show(host, unit, prop):
    return host.run(f"systemctl show -P {prop} {unit}").stdout.strip()


def _address(host):
    """A host's private address: the source address of its default route, as Ansible's ansible_default_ipv4."""
    return re.search(r"\bsrc (\S+)", host.check_output("ip -4 route get 1.1.1.1")).group(1)


@pytest.fixture(scope="module")
def name(host):
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def spec(name):
    return HOSTS[name]


@pytest.fixture(scope="module")
def broker_address():
    """The address of the broker (the Debian 12 host), read on that host."""
    return _address(testinfra.get_host(f"podman://{BOOKWORM}"))


# What the fleet answers to one host acting as a producer: one Python run per host.
FLEET = """
import json, re, sys
from sampleapp.tasks import app
tasks = json.loads(sys.argv[1])
pings = app.control.inspect(timeout=3).ping() or {}
reports = app.control.inspect(timeout=15, limit=len(pings)).report() or {}
print(json.dumps({
    "nodes": sorted(pings),
    "python": {node: re.search(r"py:(\\S+)", reply["ok"]).group(1) for node, reply in reports.items()},
    "results": {task: app.send_task(task, args=args).get(timeout=60) for task, args in tasks.items()},
}))
"""


@pytest.fixture(scope="module")
def fleet(host):
    """Nodes that answer a ping, each node's Python and where each of TASKS ran, seen from this host."""
    return _python(host, FLEET, json.dumps({task: args for task, (args, _, _) in TASKS.items()}))


# ---- the host --------------------------------------------------------------------


def test_host_runs_its_debian_suite_and_python(host, spec):
    assert f"VERSION_CODENAME={spec['suite']}\n" in host.file("/etc/os-release").content_string
    version = host.check_output(
        "/srv/hello/current/venv/bin/python -c 'import platform; print(platform.python_version())'"
    )
    assert version.startswith(spec["python"] + ".")


def test_exactly_the_hosts_units_run_and_start_at_boot(host, spec):
    out = host.check_output("systemctl list-units --plain --no-legend --state=running 'pyfleet-hello-*'")
    assert sorted(line.split()[0] for line in out.splitlines()) == sorted(_units(spec))
    assert {unit: host.service(unit).is_enabled for unit in _units(spec)} == dict.fromkeys(_units(spec), True)


def test_only_the_beat_host_has_a_beat_unit(host, spec):
    # Exactly one beat in the fleet: the other host has neither the unit nor its file.
    assert host.file(f"/etc/systemd/system/{BEAT}").exists == spec["beat"]
    assert _show(host, BEAT, "LoadState") == ("loaded" if spec["beat"] else "not-found")


def test_units_run_as_the_app_user(host, spec):
    users = {unit: host.check_output(f"ps -o user= -p {_show(host, unit, 'MainPID')}") for unit in _units(spec)}
    assert users == dict.fromkeys(_units(spec), "app_hello")


def test_units_sandboxed(host, spec):
    scores = {}
    for unit in _units(spec):
        out = host.run(f"systemd-analyze security {unit} --no-pager").stdout
        scores[unit] = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))
    assert {unit: score for unit, score in scores.items() if score > 1.5} == {}
    assert len(scores) == len(_units(spec))


def test_stop_timeout_longer_than_the_hard_time_limit(host, spec):
    def shown(seconds):  # systemd's way: 90s, or 1min 15s
        return f"{seconds}s" if seconds < 60 else f"{seconds // 60}min {seconds % 60}s".replace(" 0s", "")

    found = {t: _show(host, WORKER.format(t), "TimeoutStopUSec") for t in spec["types"]}
    assert found == {t: shown(TIME_LIMITS[t] + 30) for t in spec["types"]}


def test_warm_shutdown_signal(host, spec):
    found = {
        t: (_show(host, WORKER.format(t), "KillSignal"), _show(host, WORKER.format(t), "KillMode"))
        for t in spec["types"]
    }
    assert found == dict.fromkeys(spec["types"], ("15", "mixed"))


def test_units_reach_only_loopback_and_the_broker(host, spec, broker_address):
    # "any" is shown as both address families; the broker is on the Debian 12 host for both hosts.
    # Flower also admits the load balancers (test_flower.py).
    units = [unit for unit in _units(spec) if unit != FLOWER]
    found = {
        unit: (sorted(_show(host, unit, "IPAddressAllow").split()), sorted(_show(host, unit, "IPAddressDeny").split()))
        for unit in units
    }
    allowed = sorted(["127.0.0.0/8", "::1/128", f"{broker_address}/32"])
    assert found == dict.fromkeys(units, (allowed, ["0.0.0.0/0", "::/0"]))


def test_environment_file_is_root_only(host, broker_address):
    env = host.file("/etc/pyfleet/celery/hello.env")
    assert env.user == "root" and env.mode == 0o600
    assert f'@{broker_address}:6379/0"\n' in env.content_string


def test_settings_module(host):
    config = host.file("/srv/hello/shared/celery/pyfleet_celeryconfig.py").content_string
    routes = "{'sampleapp.tasks.sleep': {'queue': 'io'}, 'sampleapp.tasks.whoami': {'queue': 'cpu'}}"
    assert f"task_routes = {routes}" in config
    # The longest hard time limit (default: 60) plus the 30 s margin (pyfleet/workers.py).
    # Kombu looks for tasks past that timeout every 10 s and scans at each look (throttle 1).
    assert (
        "broker_transport_options = {'visibility_timeout': 90, 'unacked_restore_throttle': 1, "
        "'socket_connect_timeout': 5}" in config
    )


# ---- the fleet, seen from each host --------------------------------------------------


def test_every_node_of_the_fleet_answers_by_type_and_host(fleet):
    assert fleet["nodes"] == NODES


def test_each_node_runs_its_hosts_python(fleet):
    assert {node: version.rsplit(".", 1)[0] for node, version in fleet["python"].items()} == {
        node: HOSTS[node.split("@", 1)[1]]["python"] for node in NODES
    }


@pytest.mark.parametrize("task", TASKS)
def test_task_runs_on_its_type_and_host(fleet, task):
    _, worker_type, where = TASKS[task]
    # "host" is the hostname of the machine that ran the task (the container's name).
    assert fleet["results"][task] == {"node": f"{worker_type}@{where}", "host": where, "queue": worker_type}


def test_beat_sends_the_tick_every_period_from_the_beat_host_only(host, spec):
    ticks = host.file("/srv/hello/shared/ticks.log")
    if not spec["beat"]:
        # No beat here, and tick (unrouted: type default) never runs here either.
        assert not ticks.exists
        return
    before = len(ticks.content_string.splitlines())
    # Every 5 s (molecule.yml): two more within 15 s, or beat does not keep time.
    deadline = time.monotonic() + 15
    while len(ticks.content_string.splitlines()) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    lines = ticks.content_string.splitlines()
    assert len(lines) >= before + 2
    assert {line.split()[1] for line in lines[before:]} == {BOOKWORM}


# ---- last: a restart ------------------------------------------------------------------

RESTART = """
import json, subprocess, sys, time
from sampleapp.tasks import app
worker_type, node, unit = sys.argv[1:4]
result = app.send_task("sampleapp.tasks.sleep", args=[4], queue=worker_type)
# Until the worker runs it (at most 20 s), then restart the worker's unit.
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    active = app.control.inspect([node], timeout=2, limit=1).active() or {}
    if any(task["id"] == result.id for task in active.get(node, [])):
        break
started = time.monotonic() < deadline
subprocess.run(["systemctl", "restart", unit], check=True)
# A warm stop waits for the running task: its result exists when the restart returns.
ready = result.ready()
print(json.dumps({"started": started, "ready": ready, "result": result.get(timeout=60)}))
"""


def test_restarting_a_type_is_warm_and_leaves_the_others(host, name, spec):
    worker_type = RESTARTED[name]
    pids = {t: _show(host, WORKER.format(t), "MainPID") for t in spec["types"]}
    out = _python(host, RESTART, worker_type, f"{worker_type}@{name}", WORKER.format(worker_type))
    assert out == {
        "started": True,
        "ready": True,
        "result": {"node": f"{worker_type}@{name}", "host": name, "queue": worker_type},
    }
    after = {t: _show(host, WORKER.format(t), "MainPID") for t in spec["types"]}
    assert after[worker_type] != pids[worker_type]
    assert {t: pid for t, pid in after.items() if t != worker_type} == {
        t: pid for t, pid in pids.items() if t != worker_type
    }
