"""The whole test suite, phase by phase: what `fab test` and `.ci/run` run."""

import os
import subprocess
import time
from dataclasses import dataclass

from pyfleet.errors import PyfleetError
from pyfleet.podman import CONTAINERS_CONF
from pyfleet.shell import ROOT, VENV_BIN

PHASES = ("unit", "lint", "molecule", "e2e")


@dataclass
class Result:
    name: str
    result: str
    seconds: float


def scenarios():
    """Molecule scenario names: every molecule/<name>/molecule.yml, sorted."""
    return sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def _env():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), CONTAINERS_CONF=str(CONTAINERS_CONF),
               PYTHONUNBUFFERED="1", PY_COLORS="0", ANSIBLE_FORCE_COLOR="0")
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env


def _step(name, *commands):
    print(f"\n=== {name} ===", flush=True)
    start = time.monotonic()
    ok = all(subprocess.run(cmd, cwd=ROOT, env=_env(), check=False).returncode == 0 for cmd in commands)
    return Result(name, "passed" if ok else "FAILED", time.monotonic() - start)


def _ensure_image():
    from pyfleet import image  # molecule's platforms use the lab base image

    return image.ensure_image("bookworm")


def run(phase=None, scenario=None):
    """Run the phases (all, or one) and return their results; a failed phase does not stop the rest."""
    if phase and phase not in PHASES:
        raise PyfleetError(f"unknown test phase '{phase}'; choose one of {', '.join(PHASES)}")
    wanted = [phase] if phase else list(PHASES)
    results = []
    py = str(VENV_BIN / "python")
    if "unit" in wanted:
        results.append(_step("unit", [py, "-m", "pytest", "-q", "tests/unit"]))
    if "lint" in wanted:
        results.append(_step("lint", [str(VENV_BIN / "yamllint"), "-s", "."],
                             [str(VENV_BIN / "ansible-lint"), "--profile", "production", "-q"]))
    if "molecule" in wanted:
        names = [scenario] if scenario else scenarios()
        if scenario and scenario not in scenarios():
            raise PyfleetError(f"no molecule scenario '{scenario}'; choose one of {', '.join(scenarios())}")
        os.environ["PYFLEET_IMAGE"] = _ensure_image()
        for name in names:
            results.append(_step(f"molecule {name}", [str(VENV_BIN / "molecule"), "test", "-s", name]))
    if "e2e" in wanted:
        results.append(_step("e2e", [py, "-m", "pytest", "-q", "-x", "tests/e2e"]))
    return results
