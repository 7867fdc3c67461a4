"""Secrets never leave where they belong.

A copy of the lab inventory (named ``lab``, so it drives the same hosts) takes the
sample app's secret key and Flower's password from an ansible-vault encrypted
vars file with fresh canary values. Every operator command runs on it; none of
them prints a canary, and on the hosts only the root-owned 0600 environment files
of the units that need them hold one (Flower's password reaches the load balancer
only as a hash). The module ends by converging the lab's own inventory again.
"""

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pyfleet import ansible

# Its vaulted copy leaves other secrets on the hosts: after every other test but test_removal
# (its `fab up` also converges the load balancer back after test_scale_out's web3).
pytestmark = pytest.mark.last(order=2)

ROOT = Path(__file__).resolve().parents[2]
FAB = str(ROOT / ".venv" / "bin" / "fab")
# What each command prints is searched for the canaries. `check` first: its --diff
# would show an environment file's new content if anything let it through.
COMMANDS = (
    ("check",),
    ("up",),
    ("deploy",),
    ("rollback",),
    ("status",),
    ("logs", "hello"),
    ("logs", "flower"),
    ("history",),
)
# Where a canary may be: the environment files of the app and of its Celery units.
ALLOWED = ("/etc/pyfleet/apps/hello.env", "/etc/pyfleet/celery/hello.env")
# Every file of the host but the kernel's and the devices' (run in parallel on the hosts).
FIND = "grep -rlsa --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e {a} -e {b} / || true"


def unspoken(value):
    """A grep pattern for ``value`` that does not contain it: the search's own command line
    (sudo logs it to the journal) must not put the canary on the host."""
    return f"{value[:8]}[{value[8]}]{value[9:]}"


@pytest.fixture(scope="module")
def canaries(lab, inv, tmp_path_factory):
    """{name: value} of the canaries, after every command ran on the vaulted copy; {command: output} too."""
    values = {"secret_key": f"canary-{secrets.token_hex(12)}", "flower": f"canary-{secrets.token_hex(12)}"}
    work = tmp_path_factory.mktemp("vault")
    copy = work / inv.path.name
    shutil.copytree(inv.path, copy)
    password_file = work / "vault-password"
    password_file.write_text(secrets.token_hex(16))
    vault = copy / "group_vars" / "all" / "vault.yml"
    vault.write_text(
        yaml.safe_dump({"vault_secret_key": values["secret_key"], "vault_flower_password": values["flower"]})
    )
    env = {"ANSIBLE_VAULT_PASSWORD_FILE": str(password_file), "FABRIC_PYFLEET_INVENTORY": str(copy)}
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-vault"), "encrypt", str(vault)],
        check=True,
        capture_output=True,
        env=_env(env),
    )
    assert values["secret_key"] not in vault.read_text()
    apps_yml = copy / "group_vars" / "all" / "apps.yml"
    apps = yaml.safe_load(apps_yml.read_text())
    next(a for a in apps["pyfleet_apps"] if a["name"] == "hello")["secrets"] = {"SECRET_KEY": "{{ vault_secret_key }}"}
    apps_yml.write_text(yaml.safe_dump(apps, sort_keys=False))
    workers_yml = copy / "group_vars" / "all" / "workers.yml"
    workers = yaml.safe_load(workers_yml.read_text())
    workers["celery_flower_users"] = [{"name": "ops", "password": "{{ vault_flower_password }}"}]
    workers_yml.write_text(yaml.safe_dump(workers, sort_keys=False))

    outputs = {}
    try:
        for command in COMMANDS:
            proc = subprocess.run([FAB, *command], cwd=ROOT, capture_output=True, text=True, timeout=900, env=_env(env))
            outputs[" ".join(command)] = (proc.returncode, proc.stdout + proc.stderr)
        yield values, outputs
    finally:
        # The lab's own inventory again (its secrets, the release the rollback left),
        # here when the lab outlives the session; else test_removal's `fab site`
        # on a copy of the lab's inventory, which runs next, puts them back.
        if lab["kept"]:
            ansible.playbook(inv.path, "site", quiet=True)


def _env(extra):
    return dict(os.environ, **extra)


def test_every_command_ran(canaries):
    _, outputs = canaries
    failed = {c: out[-600:] for c, (code, out) in outputs.items() if code != 0}
    assert not failed, failed


def test_no_command_prints_a_secret(canaries):
    values, outputs = canaries
    leaked = [c for c, (_, out) in outputs.items() for v in values.values() if v in out]
    assert not leaked, leaked


def test_only_the_units_environment_files_hold_a_secret(canaries, inv, host_run):
    values, _ = canaries
    found = {}
    for host in sorted(inv.hosts):
        out = host_run(host, FIND.format(a=unspoken(values["secret_key"]), b=unspoken(values["flower"])))
        found[host] = sorted(out.stdout.split())
    unexpected = {h: [f for f in files if f not in ALLOWED] for h, files in found.items()}
    assert not any(unexpected.values()), unexpected
    # The app's hosts do hold it (the search can find one), root-only.
    holders = [h for h, files in found.items() if files]
    assert set(inv.groups["web"]) <= set(holders), found
    for host in holders:
        for path in found[host]:
            mode = host_run(host, f"stat -c '%a %U' {path}").stdout.split()
            assert mode == ["600", "root"], (host, path, mode)


def test_the_app_got_the_vaulted_secret(canaries, inv, host_run):
    values, _ = canaries
    web = sorted(inv.groups["web"])[0]
    out = host_run(web, "cat /etc/pyfleet/apps/hello.env")
    assert f'SECRET_KEY="{values["secret_key"]}"' in out.stdout
