"""`fab test --phase mutants` and its harnesses (tests/mutants/): what runs, and that their targets exist."""

import importlib.util
from pathlib import Path

from pyfleet import suite

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"mutants_{name}", ROOT / "tests" / "mutants" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


roles = _load("roles")
python = _load("python")


def _steps(monkeypatch, phase=None):
    ran = []

    def step(name, *commands, capture=False):
        ran.append((name, [c[1:] for c in commands]))
        return suite.Result(name, "passed", 0.0)

    monkeypatch.setattr(suite, "_step", step)
    monkeypatch.setattr(suite, "_ensure_images", dict)
    monkeypatch.setattr(suite, "scenarios", list)
    suite.run(phase=phase)
    return ran


def test_mutants_phase_runs_both_harnesses_one_at_a_time(monkeypatch):
    assert _steps(monkeypatch, "mutants") == [
        ("mutants roles", [["tests/mutants/roles.py", "--min-score", "0.9"]]),
        ("mutants python", [["tests/mutants/python.py", "--min-score", "0.85"]]),
    ]


def test_the_default_run_has_no_mutants(monkeypatch):
    assert not [name for name, _ in _steps(monkeypatch) if name.startswith("mutants")]
    assert "mutants" in suite.PHASES


def test_every_role_target_and_its_tests_exist_and_yield_mutants():
    for target, tests in roles.TARGETS.items():
        assert (ROOT / target.partition(":")[0]).is_file(), target
        assert tests and all((ROOT / t).is_file() for t in tests), target
        assert roles.mutants(ROOT, target), target


def test_a_role_mutant_changes_one_line_and_comments_are_left_alone(tmp_path):
    target = "roles/app_server/templates/etc/systemd/system/app@.service.j2"
    found = roles.mutants(ROOT, target)
    lines = (ROOT / target).read_text(encoding="utf-8").splitlines(keepends=True)
    assert all(not lines[m.line - 1].lstrip().startswith("#") for m in found)
    kinds = {(m.kind, m.before.strip(), m.after.strip()) for m in found}
    assert ("delete", "KillMode=mixed", "") in kinds
    assert ("value", "KillMode=mixed", "KillMode=control-group") in kinds
    assert ("value", "Restart=on-failure", "Restart=no") in kinds
    # Applied to a copy: exactly that line changes.
    (tmp_path / target).parent.mkdir(parents=True)
    (tmp_path / target).write_text("".join(lines), encoding="utf-8")
    mutant = next(m for m in found if m.kind == "value" and "KillMode" in m.before)
    roles.apply(tmp_path, mutant)
    after = (tmp_path / target).read_text(encoding="utf-8").splitlines(keepends=True)
    assert [i for i, (a, b) in enumerate(zip(lines, after, strict=True)) if a != b] == [mutant.line - 1]


def test_python_mutants_of_the_switch_keep_the_syntax():
    found = roles.mutants(ROOT, "plugins/modules/pyfleet_release.py:activate_web")
    source = (ROOT / "plugins/modules/pyfleet_release.py").read_text(encoding="utf-8")
    assert {m.kind for m in found} == {"delete", "swap", "value"}
    for mutant in found:
        lines = source.splitlines(keepends=True)
        i = mutant.line - 1
        n = mutant.before.count("\n")
        lines[i : i + n] = [mutant.after]
        compile("".join(lines), "pyfleet_release.py", "exec")


def test_python_harness_scores_killed_and_timed_out_mutants():
    from collections import Counter

    assert python.score(Counter(killed=8, survived=1, timeout=1)) == 0.9
    # A mutant no test runs is one no test kills; unchecked ones (--only) do not count.
    assert python.score(Counter(killed=8, timeout=1, **{"no tests": 1, "not checked": 7})) == 0.9
    assert python.STATUS[1] == "killed" and python.STATUS[0] == "survived"
