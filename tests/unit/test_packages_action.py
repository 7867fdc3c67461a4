"""The pyfleet_packages action: dpkg-query decides, apt runs only for what is missing."""

import json
import subprocess
from pathlib import Path

from plugin_module import load

ROOT = Path(__file__).resolve().parents[2]
action = load("plugins/action/pyfleet_packages.py")

DPKG_FORMAT = "-f=${db:Status-Abbrev}${binary:Package}\n"


def dpkg_query(*names):
    return subprocess.run(["dpkg-query", "-W", DPKG_FORMAT, *names], capture_output=True, text=True).stdout


def test_installed_packages_are_not_missing_and_unknown_or_removed_ones_are():
    # Real dpkg-query output of this (Debian) controller: dpkg and bash are always installed.
    assert action.missing_packages(["dpkg", "bash"], dpkg_query("dpkg", "bash")) == []
    assert action.missing_packages(
        ["dpkg", "pyfleet-no-such-package"], dpkg_query("dpkg", "pyfleet-no-such-package")
    ) == ["pyfleet-no-such-package"]
    # Removed but not purged ("rc "), half-installed ("iF"), and a multi-arch name.
    output = "rc nginx\niF redis-server\nii libc6:amd64\n"
    assert action.missing_packages(["nginx", "redis-server", "libc6"], output) == ["nginx", "redis-server"]


def test_a_converged_host_costs_one_dpkg_query_and_no_apt_run(tmp_path):
    playbook = tmp_path / "packages.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - pyfleet_packages: {name: [dpkg, bash], cache_valid_time: 86400}\n      register: result\n"
        "    - ansible.builtin.debug: {msg: '{{ result | to_json }}'}\n"
    )
    out = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "json", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    tasks = json.loads(out.stdout)["plays"][0]["tasks"]
    result = tasks[0]["hosts"]["localhost"]
    assert result["changed"] is False and result["missing"] == []
    # apt never ran: its answer would carry cache_updated / cache_update_time.
    assert "cache_updated" not in result
