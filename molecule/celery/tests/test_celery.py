"""What a user of the celery_worker and celery_beat roles notices on a worker host."""

import json
import re
import time

import pytest

HOST = "pyfleet-molecule-celery"
WORKER = "pyfleet-hello-worker@{}.service"
BEAT = "pyfleet-hello-beat.service"
TYPES = ["default", "io"]


def _python(host, code):
    """Run ``code`` with the release's Python and the workers' environment; return its JSON output."""
    script = f"set -a; . /etc/pyfleet/celery/hello.env; set +a; cd /srv/hello/current; venv/bin/python -c '{code}'"
    result = host.run(script)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _send(host, task, args="[]", timeout=60):
    """Send ``task`` through the generated routes and wait for its result."""
    code = (
        "import json; from sampleapp.tasks import app; "
        f'print(json.dumps(app.send_task("{task}", args={args}).get(timeout={timeout})))'
    )
    return _python(host, code)


def _show(host, unit, prop):
    return host.run(f"systemctl show -P {prop} {unit}").stdout.strip()


@pytest.mark.parametrize("unit", [WORKER.format(t) for t in TYPES] + [BEAT])
def test_unit_running_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize("unit", [WORKER.format(t) for t in TYPES] + [BEAT])
def test_unit_runs_as_the_app_user(host, unit):
    pid = _show(host, unit, "MainPID")
    assert host.run(f"ps -o user= -p {pid}").stdout.strip() == "app_hello"


@pytest.mark.parametrize("unit", [WORKER.format(t) for t in TYPES] + [BEAT])
def test_unit_sandboxed(host, unit):
    out = host.run(f"systemd-analyze security {unit} --no-pager").stdout
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= 1.5, out.strip().splitlines()[-1]


@pytest.mark.parametrize(("worker_type", "seconds"), [("default", 90), ("io", 60)])
def test_stop_timeout_longer_than_the_hard_time_limit(host, worker_type, seconds):
    unit = WORKER.format(worker_type)
    assert _show(host, unit, "TimeoutStopUSec") in (
        f"{seconds}s",
        f"{seconds // 60}min {seconds % 60}s".replace(" 0s", ""),
    )


def test_warm_shutdown_signal(host):
    unit = WORKER.format("default")
    assert _show(host, unit, "KillSignal") == "15"
    assert _show(host, unit, "KillMode") == "mixed"


def test_workers_reach_only_loopback_and_the_broker(host):
    allow = _show(host, WORKER.format("io"), "IPAddressAllow").split()
    deny = _show(host, WORKER.format("io"), "IPAddressDeny")
    # "any" is shown as both address families, in systemd's order.
    assert set(deny.split()) == {"0.0.0.0/0", "::/0"}
    address = host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]
    assert sorted(allow) == sorted(["127.0.0.0/8", "::1/128", f"{address}/32"])


def test_environment_file_is_root_only(host):
    env = host.file("/etc/pyfleet/celery/hello.env")
    assert env.user == "root" and env.mode == 0o600
    assert "CELERY_BROKER_URL=" in env.content_string


def test_settings_module(host):
    config = host.file("/srv/hello/shared/celery/pyfleet_celeryconfig.py").content_string
    assert "task_routes = {'sampleapp.tasks.sleep': {'queue': 'io'}}" in config
    # The longest hard time limit (default: 60) plus the 30 s margin (pyfleet/workers.py).
    assert "broker_transport_options = {'visibility_timeout': 90}" in config


def test_worker_nodes_answer_by_type_and_host(host):
    code = (
        "import json; from sampleapp.tasks import app; "
        "print(json.dumps(sorted(app.control.inspect(timeout=5).ping() or {})))"
    )
    assert _python(host, code) == [f"{t}@{HOST}" for t in TYPES]


def test_routed_task_runs_on_its_type(host):
    result = _send(host, "sampleapp.tasks.sleep", "[0.1]")
    assert result["node"] == f"io@{HOST}"
    assert result["queue"] == "io"


def test_unrouted_task_runs_on_the_default_type(host):
    assert _send(host, "sampleapp.tasks.whoami")["node"] == f"default@{HOST}"


def test_beat_sends_the_tick_every_period(host):
    ticks = host.file("/srv/hello/shared/ticks.log")
    before = len(ticks.content_string.splitlines()) if ticks.exists else 0
    time.sleep(12)
    assert len(host.file("/srv/hello/shared/ticks.log").content_string.splitlines()) >= before + 2


def test_restarting_a_type_is_warm_and_leaves_the_others(host):
    other = _show(host, WORKER.format("default"), "MainPID")
    code = (
        "import json, subprocess, time; from sampleapp.tasks import app; "
        'r = app.send_task("sampleapp.tasks.sleep", args=[4]); time.sleep(1.5); '
        f'subprocess.run(["systemctl", "restart", "{WORKER.format("io")}"], check=True); '
        "print(json.dumps(r.get(timeout=60)))"
    )
    # The task started before the restart still finishes (warm shutdown).
    assert _python(host, code)["node"] == f"io@{HOST}"
    assert _show(host, WORKER.format("default"), "MainPID") == other
