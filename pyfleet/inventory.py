"""Read an Ansible inventory into plain Python: hosts, their variables and groups.

Ansible itself parses the inventory (``ansible-inventory --list``), so what pyfleet
sees is exactly what the playbooks see; this module only turns its mistakes into
one-line errors:

- a file over ``MAX_FILE_BYTES`` (1 MiB) is refused before anything parses it
  (a thousand-host ``hosts.yml`` is about 50 KB; a 20 MB one is a mistake, and
  Ansible needs about 45 times its size in memory to refuse it);
- a YAML mistake names the file, line and column (Ansible names neither for
  ``group_vars``/``host_vars``), and the variable it is in;
- each error carries the fix that applies to it, and no other.
"""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT, run, tool

# Where `fab lab.up` writes each lab's connection file (<inventory name>/connection.yml).
LAB_STATE = ROOT / ".lab"

# The largest inventory file pyfleet reads (hosts.yml, group_vars/*, host_vars/*).
MAX_FILE_BYTES = 1024 * 1024
# Files Ansible skips in an inventory directory (INVENTORY_IGNORE_EXTS).
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
YAML_SUFFIXES = (".yml", ".yaml", ".json")
VARS_DIRS = ("group_vars", "host_vars")


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
        return sorted(g for g, members in self.groups.items() if host in members and g not in ("all", "ungrouped"))

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
                    f"hosts: {', '.join(sorted(self.hosts))}; groups: {', '.join(sorted(self.groups))}"
                )
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


def inventory_files(path):
    """Every file Ansible reads for the inventory at ``path``, sorted (hosts files first, then vars).

    Hidden files and the suffixes Ansible ignores are left out; symlinks are followed once.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    found, seen = [], set()
    for top, dirs, files in os.walk(p, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(top) / f for f in sorted(files) if not f.startswith(".") and not f.endswith(IGNORED_SUFFIXES)]
    return sorted(found, key=lambda f: (f.relative_to(p).parts[0] in VARS_DIRS, str(f.relative_to(p))))


def check_sizes(path, limit=MAX_FILE_BYTES):
    """Refuse any inventory file over ``limit`` bytes, before anything parses it."""
    for f in inventory_files(path):
        size = f.stat().st_size
        if size > limit:
            raise PyfleetError(
                f"inventory {path}: {_rel(path, f)} is {size / 1024 / 1024:.1f} MiB, over the "
                f"{limit // 1024 // 1024} MiB limit of an inventory file (thousands of hosts take a few hundred KB); "
                "check it is the file you meant, or split it into group_vars/ and host_vars/ files"
            )


class _StrictLoader(yaml.SafeLoader):
    """YAML as Ansible reads an inventory: duplicate keys refused, ``!vault``/``!unsafe`` accepted."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base constructor says so
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _ansible_tag(loader, suffix, node):
    if suffix in ("vault", "unsafe") and isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    raise yaml.constructor.ConstructorError(
        None, None, f"tag !{suffix} is not one Ansible reads here (only !vault and !unsafe strings)", node.start_mark
    )


_StrictLoader.add_multi_constructor("!", _ansible_tag)
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def _is_yaml(path, f):
    """Whether Ansible reads ``f`` as YAML: a .yml/.yaml/.json file, or any file under group_vars/host_vars."""
    rel = Path(f).relative_to(path) if Path(path).is_dir() else Path(f.name)
    return f.suffix in YAML_SUFFIXES or (len(rel.parts) > 1 and rel.parts[0] in VARS_DIRS)


def yaml_problem(path):
    """The first YAML mistake in the inventory's files as one line, or None.

    Names the file (relative to the inventory), line and column, the variable
    it is in (group_vars/host_vars) and the fix.
    """
    for f in inventory_files(path):
        if not _is_yaml(path, f):
            continue
        rel = _rel(path, f)
        data = f.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            return (
                f"{rel}:{line}: byte {exc.start} is not UTF-8 text (a binary file?); "
                f"save it as UTF-8 or move it out of the inventory directory"
            )
        try:
            content = yaml.load(text, Loader=_StrictLoader)
        except yaml.MarkedYAMLError as exc:
            return _yaml_error(rel, text, exc)
        except yaml.YAMLError as exc:
            return f"{rel}: {exc}; fix the YAML syntax there"
        if content is None or isinstance(content, dict):
            continue
        kind = type(content).__name__.replace("str", "a string").replace("list", "a list")
        if Path(rel).parts[0] in VARS_DIRS:
            return (
                f"{rel}: expected a mapping of variable: value at the top, got {kind}; "
                "write one 'name: value' per variable"
            )
        return (
            f"{rel}: expected a mapping of group: hosts, children and vars at the top, got {kind}; start it with 'all:'"
        )
    return None


def _yaml_error(rel, text, exc):
    """One line for a PyYAML error: where, what, in which variable, and the fix."""
    mark = exc.problem_mark or exc.context_mark
    line, column = mark.line + 1, mark.column + 1
    problem = exc.problem or "invalid YAML"
    if problem.startswith("expected <block end>") and exc.context_mark:
        # PyYAML's words for a line indented deeper than its block allows
        problem = f"indented deeper than the block at line {exc.context_mark.line + 1} allows"
        exc.context = None
    if exc.context and exc.context_mark and exc.context_mark.line != mark.line:
        problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
    elif exc.context:
        problem += f" ({exc.context})"
    lines = text.splitlines()
    where = f"{rel}:{line}:{column}"
    if Path(rel).parts[0] in VARS_DIRS:
        start = (exc.context_mark or mark).line  # a flow collection left open: the variable it started in
        key = next(
            (
                m.group(1)
                for m in (
                    re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*:", lines[i])
                    for i in range(min(start, len(lines) - 1), -1, -1)
                )
                if m
            ),
            None,
        )
        if key:
            where += f" (variable {key})"
    if problem.startswith("duplicate key"):
        fix = (
            "a host appears once per group; remove one"
            if _parent_key(lines, mark) == "hosts"
            else "keep one of them (Ansible refuses both)"
        )
    elif "\t" in problem or "'\\t'" in problem:
        fix = "indent with spaces, not tabs"
    elif "tag" in problem:
        fix = "remove the tag or quote the value"
    elif problem.startswith("indented deeper"):
        fix = "align it with the keys above it"
    else:
        fix = "fix the YAML syntax there"
    return f"{where}: {problem}; {fix}"


def _parent_key(lines, mark):
    """The key of the block mapping that holds the key at ``mark`` (block style only), or None."""
    for i in range(mark.line - 1, -1, -1):
        stripped = lines[i].lstrip()
        if stripped and not stripped.startswith("#") and len(lines[i]) - len(stripped) < mark.column:
            m = re.match(r"([^:#\s]+)\s*:\s*$", stripped)
            return m.group(1) if m else None
    return None


def _rel(path, f):
    p = Path(path)
    return str(Path(f).relative_to(p)) if p.is_dir() else Path(f).name


# "[WARNING]: Failed to parse inventory with 'yaml' plugin: <reason>": one per plugin Ansible tried.
PLUGIN_FAILURE = re.compile(
    r"^\[WARNING\]: Failed to parse inventory with '(?P<plugin>\w+)' plugin: (?P<reason>.+)$", re.M
)
FAILED_SOURCE = re.compile(r"Completely failed to parse inventory source (?P<source>\S+)")


def _parse_failure(path, stderr):
    """The useful line of ansible-inventory's complaint: the file it could not parse and why.

    Ansible tries each inventory plugin on a file and warns for each; the reason
    that counts is the one of the plugin meant for the file: ``yaml`` for a
    .yml/.yaml/.json file, ``ini`` for any other.
    """
    reasons = {m["plugin"]: m["reason"].strip() for m in PLUGIN_FAILURE.finditer(stderr)}
    failed = FAILED_SOURCE.search(stderr)
    source = Path(failed["source"]) if failed else None
    meant = "yaml" if source is None or source.suffix in YAML_SUFFIXES else "ini"
    reason = reasons.get(meant) or next((r for plugin, r in reasons.items() if plugin != "auto"), None)
    if reason:
        reason = reason.removeprefix("Failed to parse inventory: ").removeprefix("YAML parsing failed: ")
        where = _rel(path, source) if source and source.is_relative_to(path) else source
        return f"{where}: {reason}" if where else reason
    errors = [line.split("]:", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("[ERROR]")]
    return next(iter(errors), None) or next(
        (line.strip() for line in stderr.splitlines() if line.strip()), "unparseable inventory"
    )


def load_failure(path, stderr):
    """The one line for an inventory that ansible-inventory refused."""
    if "no vault secrets" in stderr or "Decryption failed" in stderr:
        return (
            f"inventory {path}: ansible-vault encrypted variables and no (right) vault password; "
            "set ANSIBLE_VAULT_PASSWORD_FILE=<file with the password> and run the command again"
        )
    problem = yaml_problem(path)
    if problem:
        return f"inventory {path}: {problem}"
    return f"inventory {path}: {_parse_failure(path, stderr).rstrip('.')}; fix that file (ansible-inventory -i {path} --list shows the whole message)"


SKIPPED_KEY = re.compile(r"Skipping unexpected key \((?P<key>[^)]*)\) in group \((?P<group>[^)]*)\)")


def _skipped_key(path, stderr):
    """Ansible only warns about an unknown key in a YAML group (and drops what is under it): refuse it."""
    m = SKIPPED_KEY.search(stderr or "")
    if not m:
        return None
    close = [k for k in ("children", "hosts", "vars") if k[:3] == m["key"][:3]]
    hint = f"did you mean {close[0]}? " if close else ""
    return (
        f"inventory {path}: group {m['group']} has key {m['key']!r}, which Ansible skips with everything under it "
        f"(a group has only vars, children and hosts); {hint}rename it"
    )


def load(path, with_connection=True):
    """Parse the inventory at ``path`` with Ansible and return an :class:`Inventory`.

    With ``with_connection``, the lab's connection file (written by ``fab lab.up``)
    is read too, so hosts carry the address and key that Ansible uses.
    """
    p = resolve_path(path)
    check_sizes(p)
    sources = ["-i", p]
    conn = LAB_STATE / p.name / "connection.yml"
    if with_connection and conn.exists():
        sources += ["-i", conn]
    proc = run(
        [tool("ansible-inventory"), *sources, "--list"],
        what=f"reading inventory {p}",
        fix="fix the inventory file it names",
        env={"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true", "ANSIBLE_DUPLICATE_YAML_DICT_KEY": "error"},
        check=False,
    )
    if proc.returncode != 0:
        raise PyfleetError(load_failure(p, proc.stderr))
    skipped = _skipped_key(p, proc.stderr)
    if skipped:
        raise PyfleetError(skipped)
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
