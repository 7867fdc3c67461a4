"""Mutation testing of pyfleet's Python with mutmut (pinned in requirements.txt).

    .venv/bin/python tests/mutants/python.py [TARGET ...]

A TARGET is a file or directory of the repo (default: ``DEFAULT_TARGETS``). Each
run works in a scratch copy of the repo (``.cache/mutants/python/<name>``), never
in the work tree: mutmut writes its ``mutants/`` directory there, with the repo's
files beside the mutated ones (the unit tests read roles, examples and
inventories). One mutmut child at a time (``--max-children 1``): the machine is
shared. Prints killed/survived per file and the score, and writes the survivors
to ``.cache/mutants/python/<name>/survivors.txt`` (``mutmut show <name>`` in that
directory prints a diff).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
WORK = ROOT / ".cache" / "mutants" / "python"

# The modules whose mistakes cost most: the switch, the plan and what it is made of.
DEFAULT_TARGETS = (
    "plugins/modules/pyfleet_release.py",
    "pyfleet/plan.py",
    "pyfleet/apps.py",
    "pyfleet/patterns.py",
    "pyfleet/addresses.py",
)
# What the unit tests read besides the mutated files (copied beside them).
COPY = (
    "pyfleet",
    "plugins",
    "roles",
    "playbooks",
    "examples",
    "inventory",
    "templates",
    "lab",
    "molecule",
    "bench",
    "ansible.cfg",
    "tasks.py",
    "fabfile.py",
    "requirements.in",
    "requirements.txt",
    "requirements.yml",
    "ruff.toml",
    "README.md",
)
# mutmut's exit codes of a mutant run, as its own `mutmut results` names them.
STATUS = {0: "survived", 1: "killed", 3: "killed", -24: "timeout", 33: "no tests", 34: "skipped", 36: "timeout"}


def _ignore(directory, names):
    return {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")}


def prepare(target, tests):
    """A scratch copy of the repo set up for mutmut on ``target``; returns its directory."""
    work = WORK / target.replace("/", "_").removesuffix(".py")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in (*COPY, "tests", "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=_ignore)
        elif src.exists():
            shutil.copy2(src, work / name)
    # The venv is linked, never copied (pyfleet.shell looks for ROOT/.venv/bin).
    (work / ".venv").symlink_to(VENV_BIN.parent)
    (work / "mutants").mkdir()
    (work / "mutants" / ".venv").symlink_to(VENV_BIN.parent)
    also = "\n    ".join(name for name in COPY if (ROOT / name).exists())
    selection = "\n    ".join(tests)
    (work / "setup.cfg").write_text(
        "[mutmut]\n"
        f"source_paths =\n    {target}\n"
        f"also_copy =\n    {also}\n"
        f"pytest_add_cli_args_test_selection =\n    {selection}\n"
        "pytest_add_cli_args =\n    -q\n    -p\n    no:cacheprovider\n",
        encoding="utf-8",
    )
    return work


def results(work):
    """{file: Counter(status)} and the survivors' names, from mutmut's .meta files."""
    per_file = defaultdict(Counter)
    survivors = []
    for meta in sorted((work / "mutants").rglob("*.meta")):
        source = str(meta.relative_to(work / "mutants")).removesuffix(".meta")
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in data.get("exit_code_by_key", {}).items():
            status = STATUS.get(code, "suspicious" if code is not None else "not checked")
            per_file[source][status] += 1
            if status in ("survived", "no tests"):
                survivors.append(name)
    return per_file, survivors


def score(counts):
    """Killed share of the mutants (timeouts count as killed: the test run noticed; no tests as survived)."""
    ran = sum(v for k, v in counts.items() if k in ("killed", "survived", "timeout", "no tests"))
    return (counts["killed"] + counts["timeout"]) / ran if ran else 0.0


def run(target, tests, only=()):
    work = prepare(target, tests)
    env = dict(os.environ, PYTHONPATH="", PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    start = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "mutmut"), "run", "--max-children", "1", *only],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - start
    per_file, survivors = results(work)
    (work / "survivors.txt").write_text("".join(f"{n}\n" for n in survivors), encoding="utf-8")
    if proc.returncode != 0 and not per_file:
        print(f"{target}: mutmut failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return None, seconds
    return per_file, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=DEFAULT_TARGETS)
    parser.add_argument("--tests", nargs="*", default=["tests/unit"], help="the tests that may kill a mutant")
    parser.add_argument("--min-score", type=float, default=0.0, help="fail under this killed share (0..1)")
    parser.add_argument(
        "--only",
        nargs="*",
        default=(),
        help="mutmut name patterns, e.g. 'plugins.modules.pyfleet_release.x_activate_web*'",
    )
    args = parser.parse_args(argv)
    total = Counter()
    ok = True
    for target in args.targets:
        per_file, seconds = run(target, args.tests, args.only)
        if per_file is None:
            ok = False
            continue
        for source, counts in per_file.items():
            total.update(counts)
            checked = sum(v for k, v in counts.items() if k != "not checked")
            print(
                f"{source}: {checked} mutants, killed {counts['killed'] + counts['timeout']}, "
                f"survived {counts['survived']}, no tests {counts['no tests']}, "
                f"score {score(counts):.1%} ({seconds:.0f} s)",
                flush=True,
            )
    print(
        f"python: {sum(v for k, v in total.items() if k != 'not checked')} mutants, killed {total['killed'] + total['timeout']}, "
        f"survived {total['survived']}, no tests {total['no tests']}, score {score(total):.1%}"
    )
    return 0 if ok and score(total) >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
