"""End to end through the `fab` command line: one line on stderr, exit 1, no traceback, no host contacted.

The positive controls prove the detectors work: a valid inventory does reach
the hosts, and the fake ssh (Ansible with Mitogen, and without) or the listener
(Fabric's own SSH client) records it.
"""

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from badinput_cases import CASES
from test_badinput_commands import expected_line

from pyfleet.shell import ROOT, VENV_BIN

BY_ID = {c.id: c for c in CASES}
# (case, command line) run through `fab`: one of each kind of mistake and command.
CLI = [
    ("yaml-unclosed-flow-list", "topology"),
    ("yaml-duplicate-host", "check"),
    ("size-garbage-hosts", "deploy"),
    ("app-bad-kind", "check"),
    ("app-source-missing", "deploy"),
    ("placement-unknown-type", "deploy"),
    ("flower-no-users", "topology"),
    ("broker-two", "site --check"),
    ("limit-matches-nothing", "site --check --limit webx"),
]


def fab(command, directory, **env):
    args = command.split()
    return subprocess.run(
        [str(VENV_BIN / "fab"), args[0], "--inventory", str(directory), *args[1:]],
        cwd=ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_runs(make_inventory, fake_bin, listener, tmp_path_factory):
    """Every CLI case, run side by side; {(case id, command): CompletedProcess}, and what reached a host meanwhile."""
    before_log, before_seen = fake_bin.read_text(), list(listener.seen)
    picture = tmp_path_factory.mktemp("cli") / "topology.svg"

    def one(item):
        case_id, command = item
        if command == "topology":
            command += f" --picture {picture}"
        return item, fab(command, make_inventory(case_id, BY_ID[case_id].mutate))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(one, CLI))
    contacted = fake_bin.read_text()[len(before_log) :] + "".join(listener.seen[len(before_seen) :])
    return results, contacted


@pytest.mark.parametrize("case_id, command", CLI, ids=[f"{c}[{cmd}]" for c, cmd in CLI])
def test_fab_prints_one_line_and_exits_1(cli_runs, make_inventory, case_id, command):
    results, _ = cli_runs
    proc = results[(case_id, command)]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [expected_line(BY_ID[case_id], make_inventory(case_id))]
    assert proc.returncode == 1


def test_no_cli_case_contacted_a_host(cli_runs):
    _, contacted = cli_runs
    assert contacted == ""


@pytest.mark.parametrize("mitogen", ["1", "0"])
def test_positive_control_ansible_runs_the_fake_ssh(make_inventory, fake_bin, mitogen):
    """A valid inventory reaches the hosts through `ssh` from PATH: the fake one, with Mitogen (the default) or without."""
    before = fake_bin.read_text()
    proc = fab("check", make_inventory("base"), PYFLEET_MITOGEN=mitogen)
    calls = fake_bin.read_text()[len(before) :].splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    # One line: the first host that failed (whichever fork was first), why, the fix, and the others.
    line = re.fullmatch(
        r"error: (\S+): unreachable: ssh: .+; check that the host is up and that SSH reaches it, then run again; "
        r"also failed: (.+)\n",
        proc.stderr,
    )
    assert line, proc.stderr
    assert sorted([line[1], *line[2].split(", ")]) == ["broker1", "lb1", "web1", "web2", "worker1", "worker2"]
    assert calls and all(c.startswith("ssh ") for c in calls)
    assert {f"127.0.0.{n}" for n in (11, 12, 13, 14, 15, 16)} <= {w for c in calls for w in c.split()}


def test_positive_control_fabric_reaches_the_listener(make_inventory, fake_bin, listener):
    """`fab deploy` takes its lock on the control host (lb1) over Fabric's SSH client, which runs no `ssh`."""
    before_log, before_seen = fake_bin.read_text(), len(listener.seen)
    proc = fab("deploy", make_inventory("base"))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: control host lb1 is unreachable (")
    # On a busy machine paramiko may give up on the banner before the listener's thread
    # accepted: wait for the record, so that it is not counted against a later test.
    deadline = time.monotonic() + 30
    while len(listener.seen) == before_seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listener.seen[before_seen:] == [f"127.0.0.11:{listener.port} from 127.0.0.1"]
    assert fake_bin.read_text() == before_log


@pytest.mark.parametrize("command", ["deploy -- hostname", "status --limit web1 -- true"])
def test_a_remote_command_after_dashes_is_one_line_and_contacts_no_host(make_inventory, fake_bin, listener, command):
    """Fabric runs what follows `--` on -H hosts only, and stopped with a traceback without them."""
    before_log, before_seen = fake_bin.read_text(), len(listener.seen)
    proc = fab(command, make_inventory("base"))
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: `-- COMMAND` runs COMMAND on the hosts given with -H, or on a lab host with "
        "fab lab.ssh HOST -- COMMAND; pyfleet's commands take no `--`"
    ]
    assert proc.returncode == 1
    assert fake_bin.read_text() == before_log and len(listener.seen) == before_seen
