"""Run ansible-playbook against an inventory (and its lab connection file)."""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from pyfleet import failures
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
    """Environment for Ansible: the project's ansible.cfg, Mitogen on or off, the failure recorder on."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PYTHONUNBUFFERED="1")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    # plugins/callback/pyfleet_failures.py records each failure for playbook()'s last line.
    enabled = [c.strip() for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join(dict.fromkeys([*enabled, "pyfleet_failures"]))
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


def fact_cache(inventory_path):
    """Where the facts of one inventory's hosts are kept: .cache/facts/<name>-<hash of its path>.

    Ansible keys cached facts by host name alone: two inventories that both have a
    web1 (inventory/staging copied from inventory/production, the scale bench's lab
    beside the lab) would read each other's facts for a day (gathering = smart).
    """
    path = Path(inventory_path).resolve()
    return ROOT / ".cache" / "facts" / f"{path.name}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def playbook_path(name):
    """playbooks/<name>.yml, or ``name`` itself when it is a path (a Path object) to a playbook."""
    if isinstance(name, os.PathLike):
        return Path(name)
    path = ROOT / "playbooks" / f"{name}.yml"
    if not path.exists():
        raise PyfleetError(
            f"no playbook {path}; choose one of {', '.join(p.stem for p in (ROOT / 'playbooks').glob('*.yml'))}"
        )
    return path


def playbook(inventory_path, name, *args, mitogen=True, quiet=False, extra_env=None, output=None):
    """Run playbooks/<name>.yml (or the playbook at Path ``name``); stream its output; return the recap stats.

    ``output``: a list that gets the run's output lines (for commands that read more than the recap).

    Raises PyfleetError when any host failed or was unreachable: one line naming
    the host, the task and the cause (``_failed_run_line``).
    """
    path = playbook_path(name)
    cmd = [tool("ansible-playbook"), *inventory_args(inventory_path), str(path), *args]
    fd, failures_path = tempfile.mkstemp(prefix="pyfleet-failures-", suffix=".json")
    os.close(fd)
    env = ansible_env(mitogen)
    env.setdefault("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(fact_cache(inventory_path)))
    env.update(extra_env or {})
    env["PYFLEET_FAILURES"] = failures_path
    try:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if not quiet:
                sys.stdout.write(line)
                sys.stdout.flush()
        proc.wait()
        recorded = _read_failures(failures_path)
    finally:
        os.unlink(failures_path)
    if output is not None:
        output.extend(lines)
    text = "".join(lines)
    stats = parse_recap(text)
    bad = sorted(h for h, s in stats.items() if s["failed"] or s["unreachable"])
    if proc.returncode != 0 or bad:
        raise PyfleetError(_failed_run_line(path.stem, recorded, text, bad))
    return stats


def _read_failures(path):
    """What plugins/callback/pyfleet_failures.py wrote; empty when it wrote nothing (a parse error)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _failed_run_line(name, recorded, output, bad):
    """The one line a failed run of playbook ``name`` ends with.

    From the callback's records: "<host>: task '<task>' failed: <cause>; <fix>".
    Without them (Ansible stopped before any task, e.g. a YAML error), the
    first error line of the output.
    """
    line = failures.message(recorded.get("failures") or [], recorded.get("failed_hosts"))
    if line:
        return line
    where = f" on {', '.join(bad)}" if bad else ""
    return f"playbook {name} failed{where}: {_first_failure(output)}; fix it and run again"


def _first_failure(output):
    """The first 'fatal:'/ERROR line of an Ansible run, shortened to one line: the fallback of _failed_run_line."""
    for line in output.splitlines():
        if line.startswith(("fatal:", "ERROR!", "[ERROR]")) or "UNREACHABLE!" in line:
            msg = re.search(r'"msg":\s*"((?:[^"\\]|\\.)*)"', line)
            text = msg.group(1) if msg else line
            return text[:300]
    return "see the output above"


def total_changed(stats):
    """Sum of changed tasks over all hosts of a recap."""
    return sum(s["changed"] for s in stats.values())
