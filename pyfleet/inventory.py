"""Read an Ansible inventory into plain Python: hosts, their variables and groups.

Ansible itself parses the inventory (``ansible-inventory --list``), so what pyfleet
sees is exactly what the playbooks see; this module only turns its mistakes into
one-line errors.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT, run, tool


@dataclass
class Inventory:
    """Hosts (name -> variables) and groups (name -> host names) of one inventory."""

    path: Path
    hosts: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)

    @property
    def name(self):
        """Short name of the inventory: its directory name (``lab``, ``staging``)."""
        return self.path.name if self.path.is_dir() else self.path.stem

    def groups_of(self, host):
        """Sorted groups a host belongs to, without the implicit ``all``/``ungrouped``."""
        return sorted(g for g, members in self.groups.items()
                      if host in members and g not in ("all", "ungrouped"))

    def select(self, pattern):
        """Hosts matching a host name, a group name or a comma-separated list of them."""
        if not pattern:
            return list(self.hosts)
        chosen = []
        for part in (p.strip() for p in pattern.split(",")):
            if part in self.hosts:
                names = [part]
            elif part in self.groups:
                names = self.groups[part]
            else:
                raise PyfleetError(
                    f"'{part}' is neither a host nor a group of inventory {self.path}; "
                    f"hosts: {', '.join(sorted(self.hosts))}; groups: {', '.join(sorted(self.groups))}")
            chosen += [n for n in names if n not in chosen]
        return chosen


def resolve_path(path):
    """The inventory path, relative to the project root unless absolute; must exist."""
    p = Path(path)
    if not p.is_absolute():
        p = (ROOT / p) if not p.exists() else p.resolve()
    if not p.exists():
        raise PyfleetError(
            f"inventory {path} does not exist; pass --inventory inventory/lab or another directory under inventory/"
        )
    return p


def _parse_failure(stderr):
    """The useful line of ansible-inventory's complaint, with the file and line it names."""
    reason = next((line.split("failed:", 1)[-1].strip() for line in stderr.splitlines()
                   if "YAML parsing failed" in line or "Syntax Error" in line), None)
    origin = re.search(r"Origin: (/\S+?:\d+)", stderr)
    if reason:
        return reason.rstrip(".") + (f" at {origin.group(1)}" if origin else "")
    return next((line.strip() for line in stderr.splitlines() if line.strip()), "unparseable inventory")


def load_failure(path, stderr):
    """The one line for an inventory that ansible-inventory refused."""
    if "no vault secrets" in stderr or "Decryption failed" in stderr:
        return (f"inventory {path}: ansible-vault encrypted variables and no (right) vault password; "
                "set ANSIBLE_VAULT_PASSWORD_FILE=<file with the password> and run the command again")
    return f"inventory {path}: {_parse_failure(stderr)}; fix it (a host must appear once per group)"


def load(path, with_connection=True):
    """Parse the inventory at ``path`` with Ansible and return an :class:`Inventory`.

    With ``with_connection``, the lab's connection file (written by ``fab lab.up``)
    is read too, so hosts carry the address and key that Ansible uses.
    """
    p = resolve_path(path)
    sources = ["-i", p]
    conn = ROOT / ".lab" / p.name / "connection.yml"
    if with_connection and conn.exists():
        sources += ["-i", conn]
    proc = run(
        [tool("ansible-inventory"), *sources, "--list"],
        what=f"reading inventory {p}", fix="fix the inventory file it names",
        env={"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
             "ANSIBLE_DUPLICATE_YAML_DICT_KEY": "error"},
        check=False,
    )
    if proc.returncode != 0:
        raise PyfleetError(load_failure(p, proc.stderr))
    data = json.loads(proc.stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups = {}

    def collect(group):
        if group in groups:
            return groups[group]
        node = data.get(group, {})
        members = list(node.get("hosts", []))
        for child in node.get("children", []):
            members += [h for h in collect(child) if h not in members]
        groups[group] = members
        return members

    collect("all")
    for name in data:
        if name != "_meta":
            collect(name)
    hosts = {h: hostvars.get(h, {}) for h in groups["all"]}
    if with_connection and conn.exists():
        # The connection file may still name hosts that were removed from the inventory.
        declared = load(p, with_connection=False).hosts
        hosts = {h: v for h, v in hosts.items() if h in declared}
        groups = {g: [h for h in members if h in declared] for g, members in groups.items()}
    if not hosts:
        raise PyfleetError(f"inventory {p} has no hosts; add hosts under all.children.<group>.hosts in {p}/hosts.yml")
    return Inventory(path=p, hosts=hosts, groups=groups)
