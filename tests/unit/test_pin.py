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


# --- the exact uv commands, what pin hands them, and the file it writes ------------------


def test_a_resolution_runs_this_exact_uv_command():
    assert pin.resolve_args("uv", "requirements.in", "r.in", "out.txt") == [
        "uv",
        "pip",
        "compile",
        "--universal",
        "--python-version",
        "3.11",
        "--only-binary",
        ":all:",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--output-file",
        "out.txt",
        "r.in",
    ]  # no --upgrade unless asked: the pins found in out.txt are kept


def test_a_uv_lock_export_runs_this_exact_uv_command():
    assert pin.resolve_args("uv", "uv.lock", Path("/p/uv.lock"), "out.txt", extras=["web"]) == [
        "uv",
        "export",
        "--frozen",
        "--format",
        "requirements.txt",
        "--no-hashes",
        "--no-dev",
        "--no-emit-project",
        "--project",
        "/p",
        "--extra",
        "web",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--output-file",
        "out.txt",
    ]


def test_each_host_target_check_runs_this_exact_uv_command(project, fake_uv):
    calls, _ = fake_uv
    pin.pin(app_in(project))
    for call, target in zip(calls[1:], pin.HOST_TARGETS, strict=True):
        assert call[:-2] == [
            "uv",
            "pip",
            "compile",
            "--quiet",
            "--only-binary",
            ":all:",
            "--python-version",
            target.python,
            "--python-platform",
            target.uv_platform(),
            "--output-file",
        ]
        assert Path(call[-2]).name == f"{target.key}.txt" and Path(call[-1]).name == "requirements.txt"


def test_pin_tells_uv_what_it_does_and_the_fix(project, monkeypatch):
    seen = []

    def fails(args, what, fix, env=None):
        seen.append((what, fix))
        raise PyfleetError(f"{what} failed: x; {fix}")

    monkeypatch.setattr(wheelhouse, "_offline_first", fails)
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: "/usr/bin/uv")
    with pytest.raises(PyfleetError):
        pin.pin(app_in(project))
    assert seen == [(f"app mine: pinning {project / 'pyproject.toml'}", pin.RESOLVE_FIX)]


def test_a_target_check_failure_gives_the_fix(project, fake_uv):
    fake_uv[1]["fail"] = "x86_64"
    with pytest.raises(PyfleetError) as caught:
        pin.pin(app_in(project))
    assert str(caught.value) == (
        f"app mine: checking its pins for Python 3.11.2 on x86_64 failed: no wheel; {pin.RESOLVE_FIX}"
    )


def test_without_uv_pin_says_to_bootstrap(project, monkeypatch):
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: None)
    with pytest.raises(PyfleetError) as caught:
        pin.pin(app_in(project))
    assert str(caught.value) == "uv is not installed on the controller; run ./bootstrap.sh"


def test_a_requirement_source_is_resolved_from_a_requirements_in_holding_it(tmp_path, fake_uv, monkeypatch):
    spec = {"name": "x", "source": {"requirement": "httpbin==0.10.2"}, "kind": "wsgi", "entry": "httpbin:app"}
    out = tmp_path / "apps" / "deep" / "x-requirements.txt"  # directories made as needed
    app = normalize_apps([dict(spec, domains=["x.lab.test"], requirements=str(out))], check_paths=False)[0]
    written = []
    real = wheelhouse._offline_first

    def spy(args, what, fix, env=None):
        if "--universal" in args:
            written.append((Path(args[-2]).name, Path(args[-2]).read_text(encoding="utf-8"), what))
        return real(args, what, fix, env)

    monkeypatch.setattr(wheelhouse, "_offline_first", spy)
    assert pin.pin(app) == (out, 3, "requirement")
    assert written[0][:2] == ("requirements.in", "httpbin==0.10.2\n")
    assert written[0][2].startswith("app x: pinning ") and written[0][2].endswith("requirements.in")
    assert out.read_text(encoding="utf-8") == (
        "# Exact pins of app x (from the requirement source) for the hosts' Python 3.11 and newer on Linux.\n"
        "# Made by fab pin --app x; run it again after a dependency changes.\n" + PINS
    )


def test_a_uv_lock_header_names_the_lock():
    app = {"name": "mine"}
    assert pin.header(app, "uv.lock").startswith("# Exact pins of app mine (from uv.lock) for the hosts' Python 3.11 ")


def test_an_asgi_app_on_gunicorn_needs_both_server_packages(project, fake_uv):
    fake_uv[1]["pins"] = "starlette==0.40.0\n"
    with pytest.raises(PyfleetError) as caught:
        pin.pin(app_in(project, kind="asgi", server="gunicorn"))
    assert str(caught.value) == (
        "app mine: the pins lack gunicorn, uvicorn-worker, which server gunicorn needs for asgi apps; "
        "add it to the project (uv add gunicorn uvicorn-worker) and run fab pin again"
    )
    assert fake_uv[1]["servers"] == "gunicorn\nuvicorn-worker\n"


def test_a_path_dependency_in_the_pins_says_how_to_fix_it(project, fake_uv):
    fake_uv[1]["pins"] = "gunicorn==27.0.1\nmylib @ file:///src/mylib\n"
    with pytest.raises(PyfleetError) as caught:
        pin.pin(app_in(project))
    assert str(caught.value) == (
        "app mine: line 2 of the pins ('mylib @ file:///src/mylib') is not name==version; hosts install from "
        "wheels of an index: replace that path or URL dependency with a published version"
    )


def test_a_wheel_source_says_where_to_pin_instead():
    spec = {"name": "w", "source": {"wheel": "dist/w-1-py3-none-any.whl"}, "kind": "wsgi", "entry": "w:app"}
    wheel = normalize_apps([dict(spec, domains=["w.lab.test"])], check_paths=False)[0]
    with pytest.raises(PyfleetError) as caught:
        pin.pin_source(wheel)
    assert str(caught.value).endswith(
        "not source.wheel; pin the wheel's dependencies in the project it was built from, or set source.path"
    )


def test_a_project_with_a_uv_lock_is_exported_with_the_uv_found(project, fake_uv, monkeypatch):
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: "/opt/uv/bin/uv")
    (project / "uv.lock").write_text("")
    calls, _ = fake_uv
    assert pin.pin(app_in(project))[2] == "uv.lock"
    assert calls[0][:2] == ["/opt/uv/bin/uv", "export"]
    assert all(call[0] == "/opt/uv/bin/uv" for call in calls)
