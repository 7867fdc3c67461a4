"""Tests for the pyfleet_release module's host-side logic (no systemd, no nginx needed)."""

import http.server
import io
import json
import os
import socketserver
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from release_module import rel, tiny_wheel

ROOT = Path(__file__).resolve().parents[2]

IDS = [
    "20261124T050000Z",
    "20261124T050100Z",
    "20261124T050200Z",
    "20261124T050300Z",
    "20261124T050400Z",
    "20261124T050500Z",
    "20261124T050600Z",
]


def make_release(base, release, house="aaaa", **meta):
    """A complete release directory with its metadata."""
    path = base / "releases" / release
    path.mkdir(parents=True)
    (path / rel.META).write_text(
        json.dumps(dict({"release": release, "wheelhouse": str(base / "wheelhouse" / house)}, **meta))
    )
    return path


def build_params(base, **overrides):
    params = {
        "app": "hello",
        "base_dir": str(base),
        "release": IDS[-1],
        "artifact": str(base / "wheelhouse" / "x.tar"),
        "artifact_hash": "sha256:" + "ab" * 32,
        "config_files": [],
        "installer": "uv",
        "python": "/usr/bin/python3",
        "uv_dir": str(base / "uv"),
        "cache_dir": str(base / "cache"),
        "compile_bytecode": False,
        "group": None,
        "revision": {},
        "force": False,
    }
    params.update(overrides)
    return params


# --- release bookkeeping ----------------------------------------------------------


def test_current_release_follows_the_symlink(tmp_path):
    make_release(tmp_path, IDS[0])
    assert rel.current_release(str(tmp_path)) is None
    rel.switch_current(str(tmp_path), IDS[0])
    assert rel.current_release(str(tmp_path)) == IDS[0]
    assert os.readlink(tmp_path / "current") == f"releases/{IDS[0]}"


def test_switch_current_replaces_the_link_atomically(tmp_path):
    for release in IDS[:2]:
        make_release(tmp_path, release)
    rel.switch_current(str(tmp_path), IDS[0])
    rel.switch_current(str(tmp_path), IDS[1])
    assert rel.current_release(str(tmp_path)) == IDS[1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".current")] == []


def test_releases_lists_only_complete_ones_oldest_first(tmp_path):
    make_release(tmp_path, IDS[2])
    make_release(tmp_path, IDS[0])
    (tmp_path / "releases" / IDS[1]).mkdir()  # half-built: no metadata
    (tmp_path / "releases" / "not-a-release").mkdir()
    assert rel.releases(str(tmp_path)) == [IDS[0], IDS[2]]


def test_prune_keeps_the_newest_and_the_protected(tmp_path):
    for release in IDS:
        make_release(tmp_path, release)
    removed = rel.prune(str(tmp_path), 5, {IDS[0]})
    assert removed == [IDS[1]]
    assert rel.releases(str(tmp_path)) == [IDS[0], *IDS[2:]]


def test_prune_after_six_deploys_leaves_five(tmp_path):
    for release in IDS[:6]:
        make_release(tmp_path, release)
    rel.prune(str(tmp_path), 5, {IDS[5]})
    assert rel.releases(str(tmp_path)) == IDS[1:6]


def test_prune_removes_half_built_releases_and_unused_wheelhouses(tmp_path):
    make_release(tmp_path, IDS[1], house="used")
    (tmp_path / "releases" / IDS[0]).mkdir()
    for house in ("used", "unused"):
        (tmp_path / "wheelhouse" / house).mkdir(parents=True)
    (tmp_path / "wheelhouse" / "next.tar").write_text("shipped, not unpacked yet")
    rel.prune(str(tmp_path), 5, {IDS[1]})
    assert not (tmp_path / "releases" / IDS[0]).exists()
    assert sorted(p.name for p in (tmp_path / "wheelhouse").iterdir()) == ["next.tar", "used"]


def test_upstream_points_at_the_release_socket():
    text = rel.upstream_text("hello", "/run/hello", IDS[0])
    assert f"server unix:/run/hello/{IDS[0]}/app.sock" in text
    assert text.count("server ") == 1


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Starting\nTraceback (most recent call last):\n  File x\n"
            "ModuleNotFoundError: No module named 'nope'\nexiting\n",
            "ModuleNotFoundError: No module named 'nope'",
        ),
        ("one\ntwo\n", "two"),
        ("", "no output"),
    ],
)
def test_last_line_picks_the_telling_line(text, expected):
    assert rel.last_line(text) == expected


def test_last_line_keeps_300_characters():
    assert rel.last_line("x" * 400) == "x" * 300
    assert rel.last_line(f"error: {'y' * 400}\nbye") == f"error: {'y' * 293}"


def test_config_hash_changes_with_file_content(tmp_path):
    env = tmp_path / "hello.env"
    env.write_text("A=1\n")
    first = rel.sha256_files([str(env)])
    env.write_text("A=2\n")
    assert rel.sha256_files([str(env)]) != first
    assert rel.sha256_files([str(tmp_path / "missing")]) != first


# --- build -------------------------------------------------------------------------


def test_build_is_a_no_op_when_the_current_release_has_the_same_artifact_and_config(tmp_path):
    env = tmp_path / "hello.env"
    env.write_text("A=1\n")
    params = build_params(tmp_path, config_files=[str(env)])
    make_release(tmp_path, IDS[0], artifact_hash=params["artifact_hash"], config_hash=rel.sha256_files([str(env)]))
    rel.switch_current(str(tmp_path), IDS[0])
    result = rel.action_build(params)
    assert result == {
        "changed": False,
        "release": IDS[0],
        "previous": IDS[0],
        "new": False,
        "built": False,
        "seconds": {},
    }


def test_build_switches_to_an_existing_release_of_the_same_artifact_the_deploy_names(tmp_path):
    """The measured split: this host serves an older release, but has the one the others run."""
    params = build_params(tmp_path, release=IDS[1], new_release=IDS[-1])
    make_release(tmp_path, IDS[0], artifact_hash="sha256:old", config_hash=rel.sha256_files([]))
    make_release(tmp_path, IDS[1], artifact_hash=params["artifact_hash"], config_hash=rel.sha256_files([]))
    rel.switch_current(str(tmp_path), IDS[0])
    result = rel.action_build(params)
    assert result["release"] == IDS[1] and result["new"] is True and result["built"] is False
    assert rel.releases(str(tmp_path)) == IDS[:2]  # nothing built


def test_build_target_choices():
    def pick(wanted, fresh, existing, current, matching, force=False):
        params = {"release": wanted, "new_release": fresh, "force": force}
        return rel.build_target(params, existing, current, lambda r: r in matching)

    a, b, c, fresh = IDS[0], IDS[1], IDS[2], IDS[-1]
    # The shared id, present here with the same artifact and config: switch to it, or stay.
    assert pick(b, fresh, [a, b], a, {b}) == (b, False)
    assert pick(b, fresh, [a, b], b, {b}) == (b, False)
    # The shared id is missing here: build it under that id (even if another release matches).
    assert pick(b, fresh, [a, c], c, {c}) == (b, True)
    # The shared id is here with other config (an env change): a new release.
    assert pick(b, fresh, [a, b], b, set()) == (fresh, True)
    # No shared id: the current release up to date is a no-op; else build the new id.
    assert pick(fresh, fresh, [a], a, {a}) == (a, False)
    assert pick(fresh, fresh, [a], a, set()) == (fresh, True)
    # The shared id is here with other config, the new id with this one (an earlier run stopped before the switch).
    assert pick(b, fresh, [a, b, fresh], a, {fresh}) == (fresh, False)
    # Forced: always the new id, built unless it is here with this artifact and config.
    assert pick(b, fresh, [a, b], b, {b}, force=True) == (fresh, True)
    assert pick(b, fresh, [a, fresh], a, {fresh}, force=True) == (fresh, False)


def test_info_lists_the_artifact_of_each_release(tmp_path):
    make_release(tmp_path, IDS[0], artifact_hash="sha256:one")
    make_release(tmp_path, IDS[1], artifact_hash="sha256:two")
    rel.switch_current(str(tmp_path), IDS[1])
    info = rel.action_info({"apps": {"hello": str(tmp_path)}})["apps"]["hello"]
    assert info["current"] == IDS[1] and info["artifact_hash"] == "sha256:two"
    assert info["release_hashes"] == {IDS[0]: "sha256:one", IDS[1]: "sha256:two"}


def test_info_says_whether_the_current_release_has_the_config_the_host_holds_now(tmp_path):
    env = tmp_path / "hello.env"
    env.write_text("A=1\n")
    make_release(tmp_path, IDS[0], artifact_hash="sha256:one", config_hash=rel.sha256_files([str(env)]))
    rel.switch_current(str(tmp_path), IDS[0])

    def config_current():
        params = {"apps": {"hello": str(tmp_path)}, "config_files_of": {"hello": [str(env)]}}
        return rel.action_info(params)["apps"]["hello"]["config_current"]

    assert config_current() is True
    env.write_text("A=2\n")
    assert config_current() is False
    env.unlink()
    assert config_current() is False
    # Not asked: no answer (the controller then never skips the app).
    assert rel.action_info({"apps": {"hello": str(tmp_path)}})["apps"]["hello"]["config_current"] is None


def test_info_on_a_host_without_releases_never_says_the_config_is_current(tmp_path):
    env = tmp_path / "hello.env"
    env.write_text("A=1\n")
    params = {"apps": {"hello": str(tmp_path)}, "config_files_of": {"hello": [str(env)]}}
    assert rel.action_info(params)["apps"]["hello"]["config_current"] is False


def test_build_makes_a_new_release_when_the_config_changed(tmp_path):
    env = tmp_path / "hello.env"
    env.write_text("A=1\n")
    params = build_params(tmp_path, config_files=[str(env)])
    make_release(tmp_path, IDS[0], artifact_hash=params["artifact_hash"], config_hash=rel.sha256_files([str(env)]))
    rel.switch_current(str(tmp_path), IDS[0])
    env.write_text("A=2\n")
    # The artifact was never shipped: the build starts, fails and cleans up.
    with pytest.raises(rel.Failed, match="is not on the host"):
        rel.action_build(params)
    assert not (tmp_path / "releases" / IDS[-1]).exists()


def test_build_rejects_a_bad_release_id(tmp_path):
    with pytest.raises(rel.Failed, match="not a UTC stamp"):
        rel.action_build(build_params(tmp_path, release="../../etc"))
    with pytest.raises(rel.Failed, match=r"^release id '\.\./x' is not a UTC stamp"):
        rel.action_build(build_params(tmp_path, new_release="../x"))


def test_build_with_pip_from_a_wheelhouse(tmp_path):
    """A real (small) release: a venv with pip from a wheelhouse holding one pure wheel."""
    house = tmp_path / "src"
    house.mkdir()
    wheel = house / "tiny-1.0-py3-none-any.whl"
    tiny_wheel(wheel)
    (house / "requirements.lock").write_text("tiny==1.0\n")
    (house / "MANIFEST.json").write_text(json.dumps({"project": "tiny", "version": "1.0", "content_hash": "sha256:00"}))
    (house / "static").mkdir()
    (house / "static" / "hello.txt").write_text("hi\n")
    tar_path = tmp_path / "wheelhouse" / "art.tar"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(house.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(house)), recursive=False)
    params = build_params(tmp_path, artifact=str(tar_path), installer="pip", python=os.environ.get("PYTHON", "python3"))
    params["python"] = __import__("sys").executable
    result = rel.action_build(params)
    release = tmp_path / "releases" / IDS[-1]
    assert result["changed"] and result["new"]
    assert (release / "static" / "hello.txt").read_text() == "hi\n"
    assert "version=1.0" in (release / "REVISION").read_text()
    assert os.readlink(release / "shared") == "../../shared"
    assert list((release / "venv" / "lib").glob("python3*/site-packages/tiny.py"))
    assert not list((release / "venv" / "lib").glob("python3*/site-packages/__pycache__/tiny.*"))  # --no-compile
    assert not tar_path.exists()  # unpacked, then removed
    # The same build again is recognised as done.
    assert rel.action_build(params)["changed"] is False


def test_unpack_refuses_members_outside_the_wheelhouse(tmp_path):
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        data = b"x"
        info = tarfile.TarInfo("../escape.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(rel.Failed, match="unsafe member"):
        rel.unpack(str(tar_path), str(tmp_path / "house"))
    assert not (tmp_path / "escape.txt").exists()


def test_ensure_uv_unpacks_the_binary_once(tmp_path):
    house = tmp_path / "house"
    (house / "uv").mkdir(parents=True)
    with zipfile.ZipFile(house / "uv" / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl", "w") as zf:
        zf.writestr("uv-0.13.9.data/scripts/uv", "#!/bin/sh\necho uv 0.13.9\n")
    binary = rel.ensure_uv(str(house), str(tmp_path / "uvdir"))
    assert binary == str(tmp_path / "uvdir" / "0.13.9" / "uv")
    assert os.access(binary, os.X_OK)
    assert rel.ensure_uv(str(house), str(tmp_path / "uvdir")) == binary


# --- health over a unix socket ----------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # http.server's naming
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("local", 0)


@pytest.fixture
def unix_app(tmp_path, monkeypatch):
    """An HTTP server on a unix socket; the unit it pretends to be is always active."""
    monkeypatch.setattr(rel, "unit_state", lambda unit: {"ActiveState": "active", "NRestarts": "0"})
    path = str(tmp_path / "app.sock")
    handler = type("Handler", (_Handler,), {})
    server = _UnixServer(path, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path, handler
    server.shutdown()
    server.server_close()


def test_wait_healthy_accepts_a_2xx(unix_app):
    path, _ = unix_app
    rel.wait_healthy("x@1.service", path, "/healthz", "hello.lab.test", 5)


@pytest.mark.parametrize("status", [500, 400])
def test_wait_healthy_refuses_an_error_at_once(unix_app, status):
    path, handler = unix_app
    handler.status = status
    with pytest.raises(rel.Failed, match=rf"^health check /healthz over {path} answered HTTP {status}$"):
        rel.wait_healthy("x@1.service", path, "/healthz", "hello.lab.test", 5)


def test_wait_healthy_gives_up_when_the_unit_exited(tmp_path, monkeypatch):
    state = {"ActiveState": "failed", "Result": "exit-code", "NRestarts": "0"}
    monkeypatch.setattr(rel, "unit_state", lambda unit: state)
    monkeypatch.setattr(rel, "journal_reason", lambda unit: "ModuleNotFoundError: No module named 'nope'")
    with pytest.raises(rel.Failed, match=r"stopped: .*No module named 'nope'"):
        rel.wait_healthy("x@1.service", str(tmp_path / "none.sock"), "/healthz", "h", 5)


def test_wait_healthy_times_out_without_a_socket(tmp_path, monkeypatch):
    monkeypatch.setattr(rel, "unit_state", lambda unit: {"ActiveState": "activating", "NRestarts": "0"})
    monkeypatch.setattr(rel, "journal_reason", lambda unit: f"{unit}: still importing")
    sock = tmp_path / "none.sock"
    looks = []
    monkeypatch.setattr(rel.time, "sleep", looks.append)
    clock = iter(x / 10 for x in range(100))
    monkeypatch.setattr(rel.time, "monotonic", lambda: next(clock))
    with pytest.raises(
        rel.Failed,
        match=rf"^health check /healthz over {sock} got no answer within 1 s \(no socket yet\); "
        r"journal: x@1.service: still importing$",
    ):
        rel.wait_healthy("x@1.service", str(sock), "/healthz", "h", 1)
    assert set(looks) == {0.2}


# --- activate: the parts that decide before touching systemd -------------------------------


def activate_params(base, **overrides):
    params = {
        "app": "hello",
        "base_dir": str(base),
        "release": "previous",
        "unit": "pyfleet-hello",
        "socket_dir": str(base / "run"),
        "health_path": "/healthz",
        "health_host": "h",
        "health_timeout": 1,
        "upstream_file": None,
        "nginx_port": 80,
        "drain_wait": 0,
        "stop_wait": 0,
        "keep_releases": 5,
        "remove_on_failure": False,
        "celery_app": None,
    }
    params.update(overrides)
    return params


def test_rollback_without_an_older_release_fails_clearly(tmp_path):
    make_release(tmp_path, IDS[0])
    rel.switch_current(str(tmp_path), IDS[0])
    with pytest.raises(rel.Failed, match=f"no release older than {IDS[0]}"):
        rel.action_activate(activate_params(tmp_path))


def test_activate_of_a_missing_release_names_the_ones_there(tmp_path):
    make_release(tmp_path, IDS[0])
    with pytest.raises(rel.Failed, match=f"release {IDS[3]} does not exist; releases: {IDS[0]}$"):
        rel.action_activate(activate_params(tmp_path, release=IDS[3]))
    make_release(tmp_path, IDS[1])
    with pytest.raises(rel.Failed, match=f"release {IDS[3]} does not exist; releases: {IDS[0]}, {IDS[1]}$"):
        rel.action_activate(activate_params(tmp_path, release=IDS[3]))


def test_activate_in_place_only_prunes(tmp_path, monkeypatch):
    for release in IDS:
        make_release(tmp_path, release)
    rel.switch_current(str(tmp_path), IDS[-1])
    unit = f"pyfleet-hello@{IDS[-1]}.service"
    monkeypatch.setattr(rel, "instances", lambda name: {unit: "active"})
    monkeypatch.setattr(rel, "enabled_instances", lambda name: [unit])
    result = rel.action_activate(activate_params(tmp_path, release=IDS[-1]))
    assert result["changed"] is True and result["pruned"] == IDS[:2]
    assert rel.action_activate(activate_params(tmp_path, release=IDS[-1]))["changed"] is False


def test_failed_start_removes_the_new_release_and_keeps_current(tmp_path, monkeypatch):
    for release in IDS[:2]:
        make_release(tmp_path, release)
    rel.switch_current(str(tmp_path), IDS[0])
    calls = []

    def fake_run(args, env=None, timeout=600):
        calls.append(args)
        return (1, "") if args[:2] == ["systemctl", "start"] else (0, "")

    monkeypatch.setattr(rel, "run", fake_run)
    monkeypatch.setattr(rel, "instances", lambda name: {})
    monkeypatch.setattr(rel, "journal_reason", lambda unit: "ImportError: boom")
    with pytest.raises(
        rel.Failed,
        match=rf"release {IDS[1]} refused: .*did not start: ImportError: boom "
        rf"\(still serving {IDS[0]}, release removed\)",
    ):
        rel.action_activate(activate_params(tmp_path, release=IDS[1], remove_on_failure=True))
    assert rel.current_release(str(tmp_path)) == IDS[0]
    assert rel.releases(str(tmp_path)) == [IDS[0]]
    assert ["systemctl", "stop", "--no-block", f"pyfleet-hello@{IDS[1]}.service"] in calls


def test_journal_reason_prefers_the_apps_exception_over_gunicorns(monkeypatch):
    journal = (
        "[INFO] Booting worker with pid: 12\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/hello/releases/x/venv/lib/python3.11/site-packages/sampleapp/wsgi.py", line 1\n'
        "ModuleNotFoundError: No module named 'does_not_exist'\n"
        "[INFO] Worker exiting (pid: 12)\n"
        "Traceback (most recent call last):\n"
        "gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>\n"
    )
    monkeypatch.setattr(rel, "run", lambda args, env=None, timeout=600: (0, journal))
    assert rel.journal_reason("x@1.service") == "ModuleNotFoundError: No module named 'does_not_exist'"


# --- arguments: checked by Ansible from the module's own spec ---------------------------


def test_every_argument_is_documented_as_ansible_checks_it():
    options = yaml.safe_load(rel.DOCUMENTATION)["options"]
    assert sorted(options) == sorted(rel.ARGUMENT_SPEC)
    for name, spec in rel.ARGUMENT_SPEC.items():
        for key in ("type", "elements", "default", "choices", "required"):
            assert options[name].get(key) == spec.get(key), f"{name}.{key}"


def argument_errors(**params):
    result = ArgumentSpecValidator(rel.ARGUMENT_SPEC, **rel.ARGUMENT_RULES).validate(params)
    return " | ".join(result.error_messages)


WEB = {
    "action": "activate",
    "app": "hello",
    "base_dir": "/srv/hello",
    "release": "previous",
    "unit": "pyfleet-hello",
    "socket_dir": "/run/hello",
}
WORKER = {
    "action": "activate",
    "app": "hello",
    "base_dir": "/srv/hello",
    "release": "previous",
    "celery_app": "sampleapp.tasks:app",
    "user": "app_hello",
    "group": "app_hello",
}


@pytest.mark.parametrize(
    "params, error",
    [
        (WEB, ""),
        (WORKER, ""),
        ({"action": "info"}, ""),
        (
            {"action": "absent", "app": "hello", "base_dir": "/srv/hello", "release": IDS[0], "unit": "pyfleet-hello"},
            "",
        ),
        (
            dict(WEB, unit=None, socket_dir=None),
            "action is activate but any of the following are missing: unit, celery_app",
        ),
        (dict(WEB, celery_app="sampleapp.tasks:app", user="u", group="g"), "mutually exclusive: unit|celery_app"),
        (
            dict(WORKER, upstream_file="/etc/nginx/pyfleet/hello.upstream.conf"),
            "mutually exclusive: upstream_file|celery_app",
        ),
        ({k: v for k, v in WORKER.items() if k != "user"}, "missing parameter(s) required by 'celery_app': user"),
        (
            {k: v for k, v in WEB.items() if k != "socket_dir"},
            "action is activate but any of the following are missing: socket_dir, celery_app",
        ),
        (dict(WORKER, socket_dir="/run/hello"), "mutually exclusive: socket_dir|celery_app"),
        (
            {k: v for k, v in WEB.items() if k != "release"},
            "action is activate but all of the following are missing: release",
        ),
        (
            {
                "action": "build",
                "app": "hello",
                "base_dir": "/srv/hello",
                "release": IDS[0],
                "artifact_hash": "sha256:x",
            },
            "action is build but all of the following are missing: group",
        ),
        (
            {"action": "absent", "app": "hello", "release": IDS[0]},
            "action is absent but all of the following are missing: base_dir",
        ),
        ({"action": "switch"}, "value of action must be one of: info, build, activate, absent"),
    ],
)
def test_ansible_checks_what_each_action_needs(params, error):
    params = {k: v for k, v in params.items() if v is not None}
    if error:
        assert error in argument_errors(**params)
    else:
        assert argument_errors(**params) == ""


# --- activate on a host that runs only Celery workers ------------------------------------

CELERY_APP = "workerapp.tasks:app.celery"  # a dotted attribute, as pyfleet/apps.py allows


def worker_params(base, **overrides):
    params = activate_params(
        base,
        unit=None,
        socket_dir=None,
        celery_app=CELERY_APP,
        user="app_hello",
        group="app_hello",
        env_file="/etc/pyfleet/celery/hello.env",
        health_timeout=5,
    )
    params.update(overrides)
    return params


def make_venv_release(base, release, house="aaaa", imports=True):
    """A complete release whose venv python is this interpreter; the Celery app imports or not."""
    path = make_release(base, release, house=house)
    (path / "venv" / "bin").mkdir(parents=True)
    (path / "venv" / "bin" / "python").symlink_to(sys.executable)
    package = path / "pkgs" / "workerapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        "class App:\n    celery = 'the app'\napp = App()\n" if imports else "import does_not_exist\n"
    )
    return path


@pytest.fixture
def gate_runs(monkeypatch):
    """Runs the import gate's command without systemd: what follows systemd-run's options, in the release."""
    calls = []

    def fake_run(args, env=None, timeout=600, stdin=None):
        calls.append(args)
        if args[0] != "systemd-run":
            return 0, ""
        workdir = next(a.removeprefix("--property=WorkingDirectory=") for a in args if "WorkingDirectory=" in a)
        python = next(i for i, a in enumerate(args) if a.endswith("/venv/bin/python"))
        proc = subprocess.run(
            args[python:],
            cwd=workdir,
            env={"PYTHONPATH": os.path.join(workdir, "pkgs")},
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        return proc.returncode, proc.stdout

    monkeypatch.setattr(rel, "run", fake_run)
    return calls


def test_worker_switch_imports_the_celery_app_as_the_app_user_then_moves_current(tmp_path, gate_runs):
    make_venv_release(tmp_path, IDS[0])
    make_venv_release(tmp_path, IDS[1])
    rel.switch_current(str(tmp_path), IDS[0])
    result = rel.action_activate(worker_params(tmp_path, release=IDS[1]))
    assert result["changed"] and result["release"] == IDS[1] and result["previous"] == IDS[0]
    assert isinstance(result["seconds"]["gate"], float) and 0 <= result["seconds"]["gate"] < 60
    assert rel.current_release(str(tmp_path)) == IDS[1]
    (gate,) = gate_runs
    release_dir = str(tmp_path / "releases" / IDS[1])
    for option in (
        "--wait",
        "--pipe",
        "--collect",
        "--property=User=app_hello",
        "--property=Group=app_hello",
        "--property=EnvironmentFile=-/etc/pyfleet/celery/hello.env",
        f"--property=WorkingDirectory={release_dir}",
    ):
        assert option in gate
    assert gate[-3:] == [f"{release_dir}/venv/bin/python", "-c", "import workerapp.tasks; workerapp.tasks.app.celery"]


def test_worker_switch_again_changes_nothing(tmp_path, gate_runs):
    make_venv_release(tmp_path, IDS[0])
    rel.switch_current(str(tmp_path), IDS[0])
    assert rel.action_activate(worker_params(tmp_path, release=IDS[0]))["changed"] is False
    assert gate_runs == []  # the release it already serves is not gated again


def test_refused_worker_release_leaves_current_exactly_as_it_was(tmp_path, gate_runs):
    make_venv_release(tmp_path, IDS[0])
    make_venv_release(tmp_path, IDS[1], imports=False)
    os.symlink(f"releases/{IDS[0]}/", tmp_path / "current")  # a link written by hand, trailing slash and all
    with pytest.raises(
        rel.Failed,
        match=rf"^release {IDS[1]} refused: its venv does not import {CELERY_APP}: "
        rf"ModuleNotFoundError: No module named 'does_not_exist' "
        rf"\(still serving {IDS[0]}, release removed\)$",
    ):
        rel.action_activate(worker_params(tmp_path, release=IDS[1], remove_on_failure=True))
    assert os.readlink(tmp_path / "current") == f"releases/{IDS[0]}/"
    assert rel.releases(str(tmp_path)) == [IDS[0]]


def test_refused_worker_rollback_keeps_its_target(tmp_path, gate_runs):
    make_venv_release(tmp_path, IDS[0], imports=False)
    make_venv_release(tmp_path, IDS[1])
    rel.switch_current(str(tmp_path), IDS[1])
    with pytest.raises(rel.Failed, match=rf"release {IDS[0]} refused: .* \(still serving {IDS[1]}\)$"):
        rel.action_activate(worker_params(tmp_path, release="previous", remove_on_failure=False))
    assert rel.current_release(str(tmp_path)) == IDS[1]
    assert rel.releases(str(tmp_path)) == IDS[:2]


def test_worker_gate_that_hangs_is_stopped_and_refused(tmp_path, monkeypatch):
    make_venv_release(tmp_path, IDS[0])
    make_venv_release(tmp_path, IDS[1])
    rel.switch_current(str(tmp_path), IDS[0])
    calls = []

    def fake_run(args, env=None, timeout=600, stdin=None):
        calls.append(args)
        if args[0] == "systemd-run":
            raise subprocess.TimeoutExpired(args, timeout)
        return 0, ""

    monkeypatch.setattr(rel, "run", fake_run)
    with pytest.raises(rel.Failed, match=f"importing {CELERY_APP} took longer than 5 s"):
        rel.action_activate(worker_params(tmp_path, release=IDS[1]))
    assert calls[-1] == ["systemctl", "stop", f"pyfleet-gate-hello-{IDS[1].lower()}.service"]
    assert rel.current_release(str(tmp_path)) == IDS[0]


def test_worker_rollback_never_picks_a_half_built_release_or_another_directory(tmp_path, gate_runs):
    make_venv_release(tmp_path, IDS[0])
    (tmp_path / "releases" / IDS[1] / "venv").mkdir(parents=True)  # half-built: no metadata
    (tmp_path / "releases" / "20261124T050150").mkdir()  # not a release id
    (tmp_path / "releases" / "molecule").mkdir()
    make_venv_release(tmp_path, IDS[2])
    rel.switch_current(str(tmp_path), IDS[2])
    result = rel.action_activate(worker_params(tmp_path, release="previous"))
    assert result["release"] == IDS[0] and rel.current_release(str(tmp_path)) == IDS[0]
    assert not (tmp_path / "releases" / IDS[1]).exists()  # pruned as a leftover
    assert (tmp_path / "releases" / "molecule").is_dir() and (tmp_path / "releases" / "20261124T050150").is_dir()


@pytest.mark.parametrize(
    "release, error",
    [
        ("molecule", "release id 'molecule' is not a UTC stamp"),
        (IDS[1], f"release {IDS[1]} does not exist; releases: {IDS[0]}"),  # half-built
    ],
)
def test_worker_switch_refuses_a_directory_that_is_not_a_release(tmp_path, gate_runs, release, error):
    make_venv_release(tmp_path, IDS[0])
    rel.switch_current(str(tmp_path), IDS[0])
    (tmp_path / "releases" / release / "venv").mkdir(parents=True)
    with pytest.raises(rel.Failed, match=error):
        rel.action_activate(worker_params(tmp_path, release=release))
    assert rel.current_release(str(tmp_path)) == IDS[0] and gate_runs == []


def test_worker_switch_prunes_releases_and_their_wheelhouses(tmp_path, gate_runs):
    for number, release in enumerate(IDS):
        make_venv_release(tmp_path, release, house=f"house{number}")
        (tmp_path / "wheelhouse" / f"house{number}").mkdir(parents=True)
    rel.switch_current(str(tmp_path), IDS[-2])
    result = rel.action_activate(worker_params(tmp_path, release=IDS[-1], keep_releases=3))
    assert result["pruned"] == IDS[:4]
    assert rel.releases(str(tmp_path)) == IDS[4:]
    assert sorted(p.name for p in (tmp_path / "wheelhouse").iterdir()) == ["house4", "house5", "house6"]


def test_worker_switch_in_check_mode_changes_nothing(tmp_path, gate_runs):
    make_venv_release(tmp_path, IDS[0])
    make_venv_release(tmp_path, IDS[1])
    rel.switch_current(str(tmp_path), IDS[0])
    result = rel.action_activate(dict(worker_params(tmp_path, release=IDS[1]), _check_mode=True))
    assert result["changed"] is True and rel.current_release(str(tmp_path)) == IDS[0] and gate_runs == []
