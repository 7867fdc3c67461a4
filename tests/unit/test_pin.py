"""`fab pin`: where an app's pins come from, the uv commands, the checks before the file is written.

uv itself is replaced by a stand-in that writes what a resolution would: these
tests need no index (the e2e test of "Deploy your own app" runs the real uv).
"""

from pathlib import Path

import pytest

from pyfleet import commands, inventory, pin, wheelhouse
from pyfleet.apps import normalize_apps
from pyfleet.errors import PyfleetError

PINS = "flask==3.1.3\ngunicorn==27.0.1\nasync-timeout==5.0.1 ; python_full_version < '3.11.3'\n"


def app_in(project, **overrides):
    spec = {"name": "mine", "source": {"path": str(project)}, "kind": "wsgi", "entry": "mine:app"}
    spec.update(domains=["mine.lab.test"], **overrides)
    return normalize_apps([spec], check_paths=False)[0]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mine"\nversion = "1"\ndependencies = ["flask"]\n')
    return tmp_path


@pytest.fixture
def fake_uv(monkeypatch):
    """Replace uv: each command is recorded, and a resolution writes ``result["pins"]`` to its output file."""
    calls, result = [], {"pins": PINS, "fail": None}

    def run(args, what, fix, env=None):
        calls.append([str(a) for a in args])
        if str(args[-1]).endswith("servers.in"):
            result["servers"] = Path(args[-1]).read_text()
        if result["fail"] and result["fail"] in " ".join(map(str, args)):
            raise PyfleetError(f"{what} failed: no wheel; {fix}")
        out = Path(args[args.index("--output-file") + 1])
        out.write_text(result["pins"] if "--python-platform" not in args else "")
        return ""

    monkeypatch.setattr(wheelhouse, "_offline_first", run)
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: "uv")
    return calls, result


@pytest.mark.parametrize(
    "files, kind",
    [
        (["uv.lock", "requirements.in"], "uv.lock"),
        (["requirements.in"], "requirements.in"),
        ([], "pyproject.toml"),
    ],
)
def test_the_projects_own_lock_wins_then_requirements_in_then_pyproject(project, files, kind):
    for name in files:
        (project / name).write_text("")
    assert pin.pin_source(app_in(project)) == (kind, project / kind)


def test_a_requirement_source_is_pinned_from_the_requirement():
    spec = {"name": "x", "source": {"requirement": "httpbin==0.10.2"}, "kind": "wsgi", "entry": "httpbin:app"}
    app = normalize_apps([dict(spec, domains=["x.lab.test"])], check_paths=False)[0]
    assert pin.pin_source(app) == ("requirement", "httpbin==0.10.2")


def test_a_wheel_source_or_an_empty_directory_is_one_line_with_the_fix(tmp_path):
    spec = {"name": "w", "source": {"wheel": "dist/w-1-py3-none-any.whl"}, "kind": "wsgi", "entry": "w:app"}
    wheel = normalize_apps([dict(spec, domains=["w.lab.test"])], check_paths=False)[0]
    with pytest.raises(PyfleetError, match=r"^app w: fab pin reads a project directory or a requirement source"):
        pin.pin_source(wheel)
    with pytest.raises(PyfleetError, match=r"has none of uv.lock, requirements.in, pyproject.toml; point source.path"):
        pin.pin_source(app_in(tmp_path))
    with pytest.raises(PyfleetError, match=r"is not a directory; fix source.path"):
        pin.pin_source(app_in(tmp_path / "nope"))


def test_the_pins_go_to_the_specs_requirements_else_beside_the_project(project):
    assert pin.output_path(app_in(project)) == project / "requirements.txt"
    assert pin.output_path(app_in(project, requirements="/x/pins.txt")) == Path("/x/pins.txt")


def test_a_requirement_source_needs_the_specs_requirements_path(fake_uv):
    spec = {"name": "x", "source": {"requirement": "httpbin==0.10.2"}, "kind": "wsgi", "entry": "httpbin:app"}
    app = normalize_apps([dict(spec, domains=["x.lab.test"])], check_paths=False)[0]
    with pytest.raises(PyfleetError, match=r"^app x: no requirements file to write; set requirements: apps/x-req"):
        pin.pin(app)
    assert fake_uv[0] == []  # refused before uv ran


def test_a_resolution_is_universal_from_the_oldest_host_python_and_wheels_only():
    args = pin.resolve_args("uv", "pyproject.toml", "p/pyproject.toml", "out.txt", extras=["web"], upgrade=True)
    assert args[:3] == ["uv", "pip", "compile"] and "--universal" in args
    assert args[args.index("--python-version") + 1] == wheelhouse.DEBIAN_12.python_short == "3.11"
    assert args[args.index("--only-binary") + 1] == ":all:"
    assert args[args.index("--extra") + 1] == "web" and "--upgrade" in args and args[-1] == "p/pyproject.toml"
    with_servers = pin.resolve_args("uv", "requirements.in", "r.in", "out.txt", servers="servers.in")
    assert with_servers[-2:] == ["r.in", "servers.in"]


def test_a_uv_lock_is_exported_as_it_is():
    args = pin.resolve_args("uv", "uv.lock", Path("/p/uv.lock"), "out.txt")
    assert args[:2] == ["uv", "export"] and "--frozen" in args and "--no-emit-project" in args
    assert args[args.index("--project") + 1] == "/p" and "--no-dev" in args and "--no-hashes" in args


def test_pin_writes_the_file_with_a_header_after_checking_every_host_target(project, fake_uv):
    calls, _ = fake_uv
    path, count, kind = pin.pin(app_in(project))
    servers = Path(calls[0][-1])
    assert servers.name == "servers.in" and calls[0][-2] == str(project / "pyproject.toml")
    assert fake_uv[1]["servers"] == "gunicorn\n"  # the spec's server, pinned whether the project names it or not
    assert (path, count, kind) == (project / "requirements.txt", 3, "pyproject.toml")
    text = path.read_text()
    assert text.startswith("# Exact pins of app mine (from pyproject.toml)") and "fab pin --app mine" in text
    assert text.endswith(PINS)
    checked = [(c[c.index("--python-version") + 1], c[c.index("--python-platform") + 1]) for c in calls[1:]]
    assert checked == [(t.python, t.uv_platform()) for t in pin.HOST_TARGETS]


def test_the_pins_keep_the_existing_files_versions_unless_upgrade(project, fake_uv, monkeypatch):
    (project / "requirements.txt").write_text("flask==3.0.0\n")
    seen = []
    real = wheelhouse._offline_first

    def spy(args, *rest, **kw):
        if "--universal" in args:
            out = Path(args[args.index("--output-file") + 1])
            seen.append(out.read_text() if out.exists() else "")
        return real(args, *rest, **kw)

    monkeypatch.setattr(wheelhouse, "_offline_first", spy)
    pin.pin(app_in(project))
    pin.pin(app_in(project), upgrade=True)
    assert seen[0] == "flask==3.0.0\n" and seen[1] == ""


@pytest.mark.parametrize(
    "pins, message",
    [
        (
            "flask==3.1.3\n",
            r"^app mine: the pins lack gunicorn, which server gunicorn needs for wsgi apps; add it to the proj",
        ),
        ("gunicorn==27.0.1\nmylib @ file:///src/mylib\n", r"^app mine: line 2 of the pins .* is not name==version"),
    ],
)
def test_pins_that_cannot_deploy_are_refused_and_nothing_is_written(project, fake_uv, pins, message):
    fake_uv[1]["pins"] = pins
    with pytest.raises(PyfleetError, match=message):
        pin.pin(app_in(project))
    assert not (project / "requirements.txt").exists()


def test_pins_without_wheels_for_a_host_target_are_refused(project, fake_uv):
    fake_uv[1]["fail"] = "aarch64"
    with pytest.raises(PyfleetError, match=r"^app mine: checking its pins for Python 3.13.5 on aarch64 failed"):
        pin.pin(app_in(project))
    assert not (project / "requirements.txt").exists()


def test_fab_pin_needs_a_known_app(monkeypatch):
    lab = inventory.load("inventory/lab", with_connection=False)
    with pytest.raises(PyfleetError, match=r"^fab pin needs --app NAME; apps: hello, hello-async$"):
        commands.pin(lab, None)
    with pytest.raises(PyfleetError, match=r"^no app 'nope' in pyfleet_apps of .*; apps: hello, hello-async$"):
        commands.pin(lab, "nope")


def test_fab_pin_says_where_it_wrote_and_asks_for_the_spec_key_it_lacks(monkeypatch, capsys):
    lab = inventory.load("inventory/lab", with_connection=False)
    monkeypatch.setattr(commands.pinmod, "pin", lambda app, extras, upgrade: (Path("/p/req.txt"), 7, "uv.lock"))
    commands.pin(lab, "hello")
    out = capsys.readouterr().out
    assert out.startswith("hello: 7 pins from uv.lock written to /p/req.txt (") and "add " not in out
    bare = [dict(a, requirements=None) for a in commands.fleet_plan.from_inventory(lab, check_paths=False)["apps"]]
    monkeypatch.setattr(commands.fleet_plan, "from_inventory", lambda inv, **kw: {"apps": bare})
    commands.pin(lab, "hello")
    assert "add  requirements: /p/req.txt  to app hello in pyfleet_apps" in capsys.readouterr().out
