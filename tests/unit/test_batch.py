"""pyfleet.batch: one worker process per task and group of hosts, each host in a thread."""

import collections
import json
import os
import subprocess
from pathlib import Path

import pytest

from pyfleet.batch import group_size, hosts_per_worker

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "batch"
HOSTS = ["h1", "h2", "h3", "h4", "h5"]


@pytest.mark.parametrize(
    ("per_worker", "forks", "size"),
    [(8, 12, 6), (8, 24, 8), (8, 30, 7), (8, 5, 5), (8, 2, 2), (4, 12, 4), (1, 12, 1)],
)
def test_groups_fill_forks_without_leaving_hosts_idle(per_worker, forks, size):
    assert group_size(per_worker, forks) == size
    assert forks - forks // size * size < size  # no room left for another group


def test_the_group_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PYFLEET_HOSTS_PER_WORKER", "3")
    assert hosts_per_worker() == 3
    for unusable in ("0", "-2", "many", ""):
        monkeypatch.setenv("PYFLEET_HOSTS_PER_WORKER", unusable)
        assert hosts_per_worker() == 12


def run_play(**env):
    """fixtures/batch/play.yml on five local "hosts" with pyfleet's strategy; the JSON callback's output."""
    environment = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_CACHE_PLUGIN="memory",
        MITOGEN_CPU_COUNT="2",  # two multiplexers, as on the lab's 2-core machine
        PYTHONPATH=str(ROOT),
        **env,
    )
    run = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "inventory.yml", "play.yml"],
        cwd=FIXTURES,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return json.loads(run.stdout)


def hosts_per_worker_pid(output):
    """Which worker process ran the first task ("Worker") of each host."""
    pids = collections.defaultdict(list)
    for task in output["plays"][0]["tasks"]:  # the JSON callback lists a task once per host here
        if task["task"]["name"] == "Worker":
            for host, result in task["hosts"].items():
                pids[result["ansible_facts"]["worker_pid"]].append(host)
    assert sorted(host for hosts in pids.values() for host in hosts) == HOSTS
    return pids


def assert_every_host_got_its_own_results(output):
    stats = output["stats"]
    assert sorted(stats) == HOSTS
    for host in HOSTS:
        # the play's assert checks each result is the host's own (args, loop items,
        # include, handler); the failure of h3 is ignored
        assert stats[host]["failures"] == 0 and stats[host]["unreachable"] == 0, stats
        assert stats[host]["ignored"] == (1 if host == "h3" else 0), stats
        assert stats[host]["changed"] == 1, stats  # the task that notifies


def test_a_rounds_hosts_share_a_worker_per_multiplexer_and_keep_their_own_results():
    output = run_play()
    assert_every_host_got_its_own_results(output)
    pids = hosts_per_worker_pid(output)
    # one worker per multiplexer, not five; the lookup they all imported at once
    # (0.3 s to import) worked in every thread
    assert len(pids) <= 2, pids


def test_forks_still_bound_the_hosts_at_work():
    output = run_play(ANSIBLE_FORKS="2")
    assert_every_host_got_its_own_results(output)
    pids = hosts_per_worker_pid(output)
    assert all(len(hosts) <= 2 for hosts in pids.values()), pids
    assert len(pids) >= 3


def test_one_host_per_worker_is_ansibles_own_way():
    output = run_play(PYFLEET_HOSTS_PER_WORKER="1")
    assert_every_host_got_its_own_results(output)
    assert len(hosts_per_worker_pid(output)) == 5
