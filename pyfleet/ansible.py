"""Run ansible-playbook against an inventory (and its lab connection file)."""

import os
import re
import subprocess
import sys

from pyfleet.errors import PyfleetError
from pyfleet.lab import connection_path
from pyfleet.shell import ROOT, tool

RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)"
)


def inventory_args(inventory_path):
    """-i arguments: the inventory, plus the lab connection file when the lab is up."""
    args = ["-i", str(inventory_path)]
    conn = connection_path(inventory_path)
    if conn.exists():
        args += ["-i", str(conn)]
    return args


def ansible_env(mitogen=True):
    """Environment for Ansible: the project's ansible.cfg, Mitogen on or off."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PYTHONUNBUFFERED="1")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    if not mitogen:
        env["ANSIBLE_STRATEGY"] = "linear"
    return env


def parse_recap(output):
    """{host: {"ok": n, "changed": n, "unreachable": n, "failed": n}} from the PLAY RECAP."""
    stats = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        m = RECAP.match(line.strip()) if in_recap else None
        if m:
            stats[m["host"]] = {k: int(v) for k, v in m.groupdict().items() if k != "host"}
    return stats


def playbook(inventory_path, name, *args, mitogen=True, quiet=False, extra_env=None):
    """Run playbooks/<name>.yml; stream its output; return the recap stats.

    Raises PyfleetError naming the failed hosts when any host failed or was unreachable.
    """
    path = ROOT / "playbooks" / f"{name}.yml"
    if not path.exists():
        raise PyfleetError(
            f"no playbook {path}; choose one of {', '.join(p.stem for p in (ROOT / 'playbooks').glob('*.yml'))}"
        )
    cmd = [tool("ansible-playbook"), *inventory_args(inventory_path), str(path), *args]
    env = ansible_env(mitogen)
    env.update(extra_env or {})
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if not quiet:
            sys.stdout.write(line)
            sys.stdout.flush()
    proc.wait()
    output = "".join(lines)
    stats = parse_recap(output)
    bad = sorted(h for h, s in stats.items() if s["failed"] or s["unreachable"])
    if proc.returncode != 0 or bad:
        reason = _first_failure(output)
        where = f" on {', '.join(bad)}" if bad else ""
        raise PyfleetError(f"playbook {name} failed{where}: {reason}; fix it and run again")
    return stats


def _first_failure(output):
    """The first 'fatal:'/ERROR line of an Ansible run, shortened to one line."""
    for line in output.splitlines():
        if line.startswith(("fatal:", "ERROR!", "[ERROR]")) or "UNREACHABLE!" in line:
            msg = re.search(r'"msg":\s*"((?:[^"\\]|\\.)*)"', line)
            text = msg.group(1) if msg else line
            return text[:300]
    return "see the output above"


def total_changed(stats):
    """Sum of changed tasks over all hosts of a recap."""
    return sum(s["changed"] for s in stats.values())
