"""Mutants of the files that carry safety: does a unit test notice a changed or deleted line?

    .venv/bin/python tests/mutants/roles.py [--per-file N | --all] [--seed S] [--min-score 0.9]

For each file in ``TARGETS`` (systemd unit templates, nginx and load balancer
templates, broker configs, the generated Celery settings, the switch and its task
files, SSH and trust settings, the sandbox) the harness makes single-line mutants:

- ``delete``: the line is removed (in Python: replaced by ``pass``);
- ``value``: the first setting value on the line is changed (a number, yes/no,
  on/off, true/false, a signal, a drain state, ...);
- ``swap``: in Python, the line trades places with the next statement of its block
  (the order of the switch's steps).

Comment lines, blank lines and lines that are only Jinja or YAML structure (their
loss is a syntax error, which any render notices) are not mutated. A fixed-seed
sample of ``--per-file`` mutants per file runs (``--all``: every one). Each mutant
is written into a scratch copy of the repo (``.cache/mutants/roles/repo``; the work
tree is never touched) and the file's cheapest tests run there: the unit tests that
render it (``TARGETS``), one pytest process at a time. A mutant is killed when they
fail. Prints killed/survived per file, the survivors (file, line, mutation) and the
score; ``--min-score`` makes it exit 1 below that share.

``--root DIR`` runs the mutants against another checkout (e.g. the commit before the
safety tests, with ``--tests`` naming the unit tests it had): the "before" score.
"""

import argparse
import random
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
VENV_PYTHON = HERE / ".venv" / "bin" / "python"

UNITS = "tests/unit/test_safety_units.py"
NGINX = "tests/unit/test_safety_nginx.py"
BROKERS = "tests/unit/test_safety_brokers.py"
SWITCH = "tests/unit/test_safety_switch.py"
COMMON = "tests/unit/test_safety_common.py"

# File -> the unit tests that should notice a change in it (cheapest first).
TARGETS = {
    "roles/app_server/templates/etc/systemd/system/app@.service.j2": [UNITS],
    "roles/celery_worker/templates/etc/systemd/system/pyfleet-app-worker@.service.j2": [UNITS],
    "roles/celery_worker/templates/etc/systemd/system/pyfleet-app-worker@.service.d/pyfleet.conf.j2": [UNITS],
    "roles/celery_beat/templates/etc/systemd/system/pyfleet-app-beat.service.j2": [UNITS],
    "roles/flower/templates/etc/systemd/system/pyfleet-app-flower.service.j2": [UNITS],
    "roles/redis/templates/etc/systemd/system/redis-server.service.d/pyfleet.conf.j2": [UNITS],
    "roles/rabbitmq/templates/etc/systemd/system/rabbitmq-server.service.d/pyfleet.conf.j2": [UNITS],
    "pyfleet/sandbox.py": [UNITS, "tests/unit/test_sandbox.py"],
    "roles/nginx/templates/etc/nginx/conf.d/pyfleet-app.conf.j2": [NGINX],
    "roles/nginx/templates/etc/nginx/conf.d/pyfleet.conf.j2": [NGINX],
    "roles/loadbalancer/templates/etc/nginx/conf.d/pyfleet-loadbalancer.conf.j2": [NGINX],
    "roles/loadbalancer/templates/etc/nginx/pyfleet/upstreams.conf.j2": [NGINX, "tests/unit/test_plan.py"],
    "roles/loadbalancer/templates/etc/nginx/pyfleet/maintenance.conf.j2": [NGINX],
    "roles/redis/templates/etc/redis/redis.conf.j2": [BROKERS],
    "roles/rabbitmq/templates/etc/rabbitmq/rabbitmq.conf.j2": [BROKERS],
    "pyfleet/celeryconfig.py": [BROKERS, "tests/unit/test_celeryconfig.py"],
    "roles/app/tasks/switch.yml": [SWITCH],
    "plugins/modules/pyfleet_release.py:activate_web": [SWITCH, "tests/unit/test_release_module.py"],
    "roles/common/templates/etc/ssh/sshd_config.d/pyfleet.conf.j2": [COMMON],
    "roles/common/templates/etc/systemd/journald.conf.d/pyfleet.conf.j2": [COMMON],
    "roles/common/tasks/trust.yml": [COMMON],
    "roles/common/handlers/main.yml": [COMMON],
}

# Value changes: a word -> what it becomes (both ways).
SWAPS = {
    "yes": "no",
    "on": "off",
    "true": "false",
    "True": "False",
    "strict": "full",
    "mixed": "control-group",
    "SIGTERM": "SIGKILL",
    "on-failure": "no",
    "notify": "simple",
    "exec": "simple",
    "drained": "active",
    "noeviction": "allkeys-lru",
    "everysec": "no",
    "always": "",
    "DENY": "SAMEORIGIN",
    "nosniff": "sniff",
    "publickey": "password",
    "absent": "present",
    "error": "error non_idempotent",
    "0644": "0666",
    "0750": "0755",
    "0077": "0022",
    "any": "none",
    "localhost": "any",
    "$remote_addr": "$proxy_add_x_forwarded_for",
    "$host": "$http_host",
}
SWAPS.update({v: k for k, v in list(SWAPS.items()) if v and v not in SWAPS})
WORD = re.compile(r"(?<![\w$@.-])(\$?[\w@.-]+)(?![\w.-])")
JINJA_ONLY = re.compile(r"^\s*(\{%-?.*?-?%\}\s*)+$")


@dataclass
class Mutant:
    path: str
    line: int  # 1-based
    kind: str
    before: str
    after: str

    def label(self):
        return f"{self.path}:{self.line} {self.kind}: {self.before.strip()!r} -> {self.after.strip()!r}"


def _is_comment(line, path):
    stripped = line.strip()
    if not stripped:
        return True
    if stripped.startswith("#") and not stripped.startswith("#{"):
        return True
    return stripped.startswith("{#")


def _outside_jinja(line):
    """The spans of ``line`` outside {{ }} and {% %}, as (start, end) pairs."""
    spans, pos = [], 0
    for match in re.finditer(r"\{\{.*?\}\}|\{%.*?%\}", line):
        spans.append((pos, match.start()))
        pos = match.end()
    spans.append((pos, len(line)))
    return spans


def _value_change(line, python):
    """The line with its first changeable setting value changed, or None."""
    if python:
        # Numbers and True/False in code, not in strings' prose.
        for match in re.finditer(r"(?<![\w.])(\d+)(?![\w.])|\b(True|False)\b", line):
            if match.group(1):
                return line[: match.start()] + str(int(match.group(1)) + 1) + line[match.end() :]
            return line[: match.start()] + SWAPS[match.group(2)] + line[match.end() :]
        return None
    key_end = 0
    m = re.match(r"\s*(?:- )?[\w.-]+\s*[:=]\s*|\s*[\w_]+\s+", line)
    if m:
        key_end = m.end()
    for start, end in _outside_jinja(line):
        start = max(start, key_end)
        if start >= end:
            continue
        segment = line[start:end]
        for match in WORD.finditer(segment):
            word = match.group(1)
            a, b = start + match.start(1), start + match.end(1)
            if word in SWAPS:
                return line[:a] + SWAPS[word] + line[b:]
            if re.fullmatch(r"\d+[smhd]?", word):
                digits = re.match(r"\d+", word).group(0)
                return line[:a] + str(int(digits) * 2 + 1) + word[len(digits) :] + line[b:]
    return None


def _python_statements(lines, first, last):
    """Indices of single-line simple statements in lines[first:last] (not inside brackets, no block header)."""
    out = []
    depth = 0
    in_string = False  # inside a triple-quoted string (docstrings)
    for i, text in enumerate(lines):
        stripped = text.strip()
        starts_inside = depth > 0 or in_string
        if stripped.count('"""') % 2:
            in_string = not in_string
        if in_string or stripped.count('"""'):
            continue
        change = sum(stripped.count(c) for c in "([{") - sum(stripped.count(c) for c in ")]}")
        depth += change
        if i < first or i >= last or not stripped or stripped.startswith("#"):
            continue
        if starts_inside:
            # One whole element of a list or dict literal ("Option": ["yes"],): it may go or change.
            blank = re.fullmatch(r'f?"(#.*)?",', stripped)  # a generated blank or comment line
            if depth > 0 and change == 0 and stripped.endswith(",") and not in_string and not blank:
                out.append((i, "element"))
            continue
        if depth != 0 or stripped.startswith(('"""', "'", '"')):
            continue
        if stripped.endswith((":", "\\")) or stripped.startswith(("def ", "class ", "@")):
            continue
        out.append((i, "statement"))
    return out


def _function_range(lines, name):
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("def ", "class "))), len(lines))
    return start + 1, end


def mutants(root, target):
    """Every mutant of ``target`` (a path, or path:function for one Python function)."""
    path, _, function = target.partition(":")
    lines = (root / path).read_text(encoding="utf-8").splitlines(keepends=True)
    python = path.endswith(".py")
    found = []
    if python:
        first, last = _function_range(lines, function) if function else (0, len(lines))
        found_lines = _python_statements(lines, first, last)
        statements = [i for i, kind in found_lines if kind == "statement"]
        for i in [i for i, kind in found_lines if kind == "element"]:
            found.append(Mutant(target, i + 1, "delete", lines[i], ""))
            changed = _value_change(lines[i], False)
            if changed and changed != lines[i]:
                found.append(Mutant(target, i + 1, "value", lines[i], changed))
        for i in statements:
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            found.append(Mutant(target, i + 1, "delete", lines[i], f"{indent}pass\n"))
            changed = _value_change(lines[i], True)
            if changed:
                found.append(Mutant(target, i + 1, "value", lines[i], changed))
            nxt = i + 1
            if nxt in statements and lines[nxt][: len(indent)] == indent and not lines[nxt][len(indent)].isspace():
                found.append(Mutant(target, i + 1, "swap", lines[i] + lines[nxt], lines[nxt] + lines[i]))
        return sorted(found, key=lambda m: (m.line, m.kind))
    depth = 0  # inside a {{ }} or {% %} that spans lines: its parts are syntax
    for i, line in enumerate(lines):
        stripped = line.strip()
        was_open = depth > 0
        depth += len(re.findall(r"\{[{%]", line)) - len(re.findall(r"[}%]\}", line))
        if was_open or depth > 0 or "ansible_managed" in line:
            continue
        if _is_comment(line, path) or JINJA_ONLY.match(line) or stripped in ("---", "[Service]", "[Unit]", "[Install]"):
            continue
        if path.endswith(".yml") and (stripped.endswith(":") or stripped.startswith("- name:")):
            continue  # YAML structure: its loss is a syntax or schema error
        if stripped in ("}", "{"):
            continue
        found.append(Mutant(target, i + 1, "delete", line, ""))
        changed = _value_change(line, False)
        if changed and changed != line:
            found.append(Mutant(target, i + 1, "value", line, changed))
    return found


def apply(root, mutant):
    path = root / mutant.path.partition(":")[0]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    i = mutant.line - 1
    n = mutant.before.count("\n") or 1
    assert "".join(lines[i : i + n]) == mutant.before, mutant.label()
    lines[i : i + n] = [mutant.after]
    path.write_text("".join(lines), encoding="utf-8")


def copy_repo(source, work):
    if work.exists():
        shutil.rmtree(work)
    ignore = shutil.ignore_patterns(".git", ".venv", ".cache", ".lab", "__pycache__", ".pytest_cache", "mutants")
    shutil.copytree(source, work, ignore=ignore, symlinks=True)
    (work / ".venv").symlink_to(HERE / ".venv")


def run_tests(work, tests):
    proc = subprocess.run(
        [str(VENV_PYTHON), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=work,
        env={"PATH": f"{HERE / '.venv' / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(work), "HOME": str(work)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    return proc.returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-file", type=int, default=6, help="mutants sampled per file (default 6)")
    parser.add_argument("--all", action="store_true", help="every mutant of every file")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--min-score", type=float, default=0.0)
    parser.add_argument("--root", type=Path, default=HERE, help="the checkout whose files and tests run")
    parser.add_argument("--tests", nargs="*", help="run these tests for every file instead of TARGETS'")
    parser.add_argument("--only", nargs="*", default=(), help="only the targets containing one of these strings")
    args = parser.parse_args(argv)

    work = HERE / ".cache" / "mutants" / "roles" / "repo"
    copy_repo(args.root.resolve(), work)
    rng = random.Random(args.seed)
    plan = []
    for target, tests in TARGETS.items():
        if args.only and not any(s in target for s in args.only):
            continue
        if not (work / target.partition(":")[0]).exists():
            continue
        candidates = mutants(work, target)
        chosen = (
            candidates
            if args.all
            else sorted(rng.sample(candidates, min(args.per_file, len(candidates))), key=lambda m: m.line)
        )
        tests = [t for t in (args.tests or tests) if (work / t).exists()]
        plan.append((target, tests, chosen, len(candidates)))

    all_tests = sorted({t for _, tests, _, _ in plan for t in tests})
    if run_tests(work, all_tests) != 0:
        print(f"the tests fail without any mutant: {' '.join(all_tests)}")
        return 2

    start = time.monotonic()
    totals = defaultdict(int)
    survivors = []
    for target, tests, chosen, candidates in plan:
        killed = 0
        path = work / target.partition(":")[0]
        original = path.read_text(encoding="utf-8")
        for mutant in chosen:
            apply(work, mutant)
            try:
                failed = not tests or run_tests(work, tests) != 0
            finally:
                path.write_text(original, encoding="utf-8")
            killed += failed
            if not failed:
                survivors.append(mutant)
        totals["mutants"] += len(chosen)
        totals["killed"] += killed
        print(
            f"{target}: {len(chosen)} of {candidates} mutants, killed {killed}, survived {len(chosen) - killed}"
            f"  [{', '.join(Path(t).name for t in tests)}]",
            flush=True,
        )
    seconds = time.monotonic() - start
    for mutant in survivors:
        print(f"SURVIVED {mutant.label()}")
    score = totals["killed"] / totals["mutants"] if totals["mutants"] else 0.0
    print(
        f"roles: {totals['mutants']} mutants, killed {totals['killed']}, "
        f"survived {totals['mutants'] - totals['killed']}, score {score:.1%} ({seconds:.0f} s)"
    )
    return 0 if score >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
