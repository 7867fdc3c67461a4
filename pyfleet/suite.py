"""The whole test suite, phase by phase: what `fab test` and `.ci/run` run."""

import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyfleet.errors import PyfleetError
from pyfleet.podman import CONTAINERS_CONF
from pyfleet.shell import ROOT, VENV_BIN

PHASES = ("unit", "lint", "molecule", "e2e", "mutants")
# `fab test` without --phase: mutants (tests/mutants/) only on request: on 2 cores the role
# mutants take about 3 minutes, mutmut on the default Python targets over an hour.
DEFAULT_PHASES = ("unit", "lint", "molecule", "e2e")


@dataclass
class Result:
    name: str
    result: str
    seconds: float


# Molecule scenarios, longest first (seconds in a CI run of 2026-12-04, one lane beside
# the e2e phase: loadbalancer 251, celery 214, rabbitmq 206, web 203, common 77). Lanes take
# the next scenario when one ends, so starting the long ones first keeps one lane
# from running alone at the end.
LONGEST_FIRST = ("loadbalancer", "celery", "web", "rabbitmq", "common")


def scenarios():
    """Molecule scenario names (every molecule/<name>/molecule.yml): longest first, unmeasured ones before all."""
    names = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
    known = {name: i for i, name in enumerate(LONGEST_FIRST)}
    return sorted(names, key=lambda name: known.get(name, -1))


def _env():
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        CONTAINERS_CONF=str(CONTAINERS_CONF),
        PYTHONUNBUFFERED="1",
        PY_COLORS="0",
        ANSIBLE_FORCE_COLOR="0",
    )
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env


def _step(name, *commands, capture=False):
    """Run ``commands`` in turn as one phase; with ``capture``, print their output whole at the end.

    Captured phases can run side by side (molecule lanes) without interleaving.
    """
    header = f"\n=== {name} ===\n"
    if not capture:
        print(header, end="", flush=True)
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        streams = {"stdout": out, "stderr": subprocess.STDOUT} if capture else {}
        ok = all(subprocess.run(cmd, cwd=ROOT, env=_env(), check=False, **streams).returncode == 0 for cmd in commands)
        if capture:
            out.seek(0)
            print(header + out.read(), end="", flush=True)
    return Result(name, "passed" if ok else "FAILED", time.monotonic() - start)


def molecule_jobs():
    """How many molecule scenarios run at once: $PYFLEET_MOLECULE_JOBS, default 2.

    A scenario spends most of its time waiting (apt, service starts, podman), so
    two at a time roughly halve the phase on a 2-core machine; 1 runs them in turn.
    """
    value = os.environ.get("PYFLEET_MOLECULE_JOBS", "2")
    if not value.isdigit() or int(value) < 1:
        raise PyfleetError(f"PYFLEET_MOLECULE_JOBS={value!r} is not a positive number; set it to 1, 2, ...")
    return int(value)


def _ensure_images():
    """The lab base images the molecule platforms use: PYFLEET_IMAGE (Debian 12) and PYFLEET_IMAGE_TRIXIE (13)."""
    from pyfleet import image

    return {"PYFLEET_IMAGE": image.ensure_image("bookworm"), "PYFLEET_IMAGE_TRIXIE": image.ensure_image("trixie")}


def _molecule(names, lanes):
    """Run the scenarios ``names`` in ``lanes`` side by side (each has its own containers and state)."""
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        return list(
            pool.map(
                lambda name: _step(f"molecule {name}", [str(VENV_BIN / "molecule"), "test", "-s", name], capture=True),
                names,
            )
        )


def run(phase=None, scenario=None):
    """Run the phases (all, or one) and return their results; a failed phase does not stop the rest."""
    if phase and phase not in PHASES:
        raise PyfleetError(f"unknown test phase '{phase}'; choose one of {', '.join(PHASES)}")
    if scenario and scenario not in scenarios():
        raise PyfleetError(f"no molecule scenario '{scenario}'; choose one of {', '.join(scenarios())}")
    wanted = [phase] if phase else list(DEFAULT_PHASES)
    e2e = [str(VENV_BIN / "python"), "-m", "pytest", "-q", "-x", "--durations=12", "tests/e2e"]
    if wanted == ["e2e"]:
        return [_step("e2e", e2e)]
    # The lab e2e suite is the longest phase and waits more than it computes
    # (deploys, restarts, redeliveries): it starts first, beside the other
    # phases, and the molecule scenarios get one lane fewer.
    with ThreadPoolExecutor(max_workers=1) as side:
        beside = side.submit(_step, "e2e", e2e, capture=True) if "e2e" in wanted else None
        results = _in_turn(wanted, scenario, lanes=max(1, molecule_jobs() - (1 if beside else 0)))
        if beside:
            results.append(beside.result())
    return results


def _in_turn(wanted, scenario, lanes):
    """The unit, lint, molecule and mutants phases of ``wanted``, one after the other."""
    results = []
    if "unit" in wanted:
        results.append(_step("unit", [str(VENV_BIN / "python"), "-m", "pytest", "-q", "tests/unit", "tests/badinput"]))
    if "lint" in wanted:
        ruff = str(VENV_BIN / "ruff")
        results.append(
            _step(
                "lint",
                [str(VENV_BIN / "yamllint"), "-s", "."],
                [str(VENV_BIN / "ansible-lint"), "--profile", "production", "-q"],
                [ruff, "check", "."],
                [ruff, "format", "--check", "."],
                # The users' CI workflow (.github/workflows), checked as GitHub would read it.
                [str(VENV_BIN / "actionlint")],
            )
        )
    if "molecule" in wanted:
        start = time.monotonic()
        os.environ.update(_ensure_images())  # built once, when their recipe changed
        results.append(Result("base images", "passed", time.monotonic() - start))
        results.extend(_molecule([scenario] if scenario else scenarios(), lanes))
    if "mutants" in wanted:
        # One mutant at a time (one pytest process, mutmut --max-children 1): the machine is shared.
        py = str(VENV_BIN / "python")
        results.append(_step("mutants roles", [py, "tests/mutants/roles.py", "--min-score", "0.9"]))
        results.append(_step("mutants python", [py, "tests/mutants/python.py", "--min-score", "0.85"]))
    return results
