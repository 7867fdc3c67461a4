"""Tests for pyfleet.deploy: the controller's plan of a deploy (no build needed here)."""

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyfleet import deploy
from pyfleet.errors import PyfleetError

APPS = [
    {"name": "hello", "source": {"type": "path", "path": "/x"}},
    {"name": "other", "source": {"type": "path", "path": "/y"}},
]


def test_release_id_is_a_utc_stamp():
    assert deploy.release_id(0) == "19700101T000000Z"
    assert re.fullmatch(r"\d{8}T\d{6}Z", deploy.release_id())


def test_with_sources_replaces_only_the_named_app(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    apps = deploy.with_sources(APPS, {"hello": str(tmp_path)})
    assert apps[0]["source"] == {"type": "path", "path": str(tmp_path)}
    assert apps[1] is APPS[1]


def test_with_sources_names_an_unknown_app(tmp_path):
    with pytest.raises(
        PyfleetError, match=r"deploy_sources.nope: no app nope in pyfleet_apps; use one of hello, other"
    ):
        deploy.with_sources(APPS, {"nope": str(tmp_path)})


def test_with_sources_needs_a_project(tmp_path):
    with pytest.raises(PyfleetError, match=r"has no pyproject\.toml"):
        deploy.with_sources(APPS, {"hello": str(tmp_path)})


def test_plan_refuses_an_unknown_app_before_building():
    with pytest.raises(PyfleetError, match="deploy_apps: no app nope"):
        deploy.plan({"apps": APPS, "only": ["nope"], "hosts": {}, "placement": {}})


def test_plan_with_no_app_on_the_hosts_says_so():
    with pytest.raises(PyfleetError, match="no app runs on the hosts of this deploy"):
        deploy.plan(
            {
                "apps": APPS,
                "hosts": {"web1": {"python": "3.11.2", "arch": "x86_64", "glibc": "2.36"}},
                "placement": {"hello": {"web": ["web2"], "workers": ["worker1"]}},
            }
        )


def test_main_answers_errors_as_one_json_line(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(json.dumps({"apps": APPS, "only": ["nope"]})))
    assert deploy.main(["build"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == {"error": "deploy_apps: no app nope in pyfleet_apps; use one of hello, other"}


def test_shared_release_reuses_the_id_of_the_same_artifact():
    def info(current, **hashes):
        return {"apps": {"hello": {"current": current, "release_hashes": hashes}}}

    old, new, fresh = "20261124T050000Z", "20261124T050100Z", "20261124T060000Z"
    # The measured split: web1 was left on the old release, web2 runs the new one.
    infos = {"web1": info(old, **{old: "sha256:a", new: "sha256:b"}), "web2": info(new, **{new: "sha256:b"})}
    assert deploy.shared_release("hello", {"web1": "sha256:b", "web2": "sha256:b"}, infos, fresh) == new
    # New code: a new id.
    assert deploy.shared_release("hello", {"web1": "sha256:c", "web2": "sha256:c"}, infos, fresh) == fresh
    # Back to the old code: the old id (web2 lacks it and builds it under that id).
    assert deploy.shared_release("hello", {"web1": "sha256:a", "web2": "sha256:a"}, infos, fresh) == old
    # Two ids of one artifact: the one current on most hosts wins.
    other = "20261124T050200Z"
    infos = {
        "web1": info(other, **{new: "sha256:b", other: "sha256:b"}),
        "web2": info(new, **{new: "sha256:b"}),
        "web3": info(new, **{new: "sha256:b"}),
    }
    assert deploy.shared_release("hello", dict.fromkeys(infos, "sha256:b"), infos, fresh) == new
    # A host that does not run the app has no say.
    assert deploy.shared_release("hello", {"web1": "sha256:z"}, {"web1": {"apps": {}}}, fresh) == fresh


def _host_info(**apps):
    """A host's pyfleet_release info with ``app=(current release, artifact hash, config_current)``."""
    return {
        "python": "3.11.2",
        "arch": "x86_64",
        "glibc": "2.36",
        "apps": {
            name: {"current": cur, "artifact_hash": digest, "config_current": ok, "release_hashes": {cur: digest}}
            for name, (cur, digest, ok) in apps.items()
        },
    }


def test_plan_leaves_out_every_app_a_host_already_runs_and_names_the_apps_no_host_needs(monkeypatch):
    old = "20261201T000000Z"

    def fake_build_all(apps, targets, out_dir, check_entry=True, only=None):
        return {name: {key: {"hash": f"sha256:{name}", "version": "1"} for key in targets} for name in only}

    monkeypatch.setattr(deploy, "build_all", fake_build_all)
    request = {
        "apps": APPS,
        "placement": {
            "hello": {"web": ["web1", "web2"], "workers": []},
            "other": {"web": ["web1", "web2"], "workers": []},
        },
        "hosts": {
            # web1 runs both as this deploy would build them; web2's hello env file changed since.
            "web1": _host_info(hello=(old, "sha256:hello", True), other=(old, "sha256:other", True)),
            "web2": _host_info(hello=(old, "sha256:hello", False), other=(old, "sha256:other", True)),
        },
        "release": "20261203T000000Z",
    }
    answer = deploy.plan(request)
    assert answer["hosts"] == {"web1": {}, "web2": {"hello": {"hash": "sha256:hello", "version": "1", "release": old}}}
    assert answer["unchanged"] == ["other"]
    # Only web2 has something to switch: the rollout plays run there alone.
    assert answer["rollout"] == {"web": ["web2"], "workers": [], "worker_serial": []}
    # A new artifact is a change everywhere; forced, nothing is left out.
    monkeypatch.setattr(
        deploy, "build_all", lambda *a, **k: {n: {"cp311-x86_64-glibc2.36": {"hash": "sha256:new"}} for n in k["only"]}
    )
    assert set(deploy.plan(request)["hosts"]["web1"]) == {"hello", "other"}
    monkeypatch.setattr(deploy, "build_all", fake_build_all)
    forced = deploy.plan(dict(request, force=True))
    assert set(forced["hosts"]["web1"]) == {"hello", "other"} and forced["unchanged"] == []
    assert forced["rollout"]["web"] == ["web1", "web2"]


def test_the_rollout_takes_web_hosts_first_then_worker_hosts_in_waves_of_distinct_types(monkeypatch):
    monkeypatch.setattr(
        deploy, "build_all", lambda *a, **k: {n: {"cp311-x86_64-glibc2.36": {"hash": "sha256:new"}} for n in k["only"]}
    )
    old = "20261201T000000Z"
    hosts = ["worker2", "web1", "worker1", "worker3"]  # the play's order
    request = {
        "apps": APPS[:1],
        "placement": {"hello": {"web": ["web1"], "workers": ["worker1", "worker2", "worker3"]}},
        "hosts": {h: _host_info(hello=(old, "sha256:old", True)) for h in hosts},
        "celery_hosts": {
            "worker1": [{"type": "default"}],
            "worker2": [{"type": "default"}, {"type": "io"}],
            "worker3": [{"type": "cpu"}],
        },
        "release": "20261203T000000Z",
    }
    assert deploy.plan(request)["rollout"] == {
        "web": ["web1"],
        "workers": ["worker2", "worker3", "worker1"],
        "worker_serial": [2, 1],
    }


def test_settled_needs_the_same_artifact_release_and_config():
    artifact = {"hash": "sha256:a", "release": "R1"}
    state = {"current": "R1", "artifact_hash": "sha256:a", "config_current": True}
    assert deploy.settled(artifact, state)
    assert not deploy.settled(artifact, dict(state, config_current=None))  # not asked: never skipped
    assert not deploy.settled(artifact, dict(state, config_current=False))
    assert not deploy.settled(artifact, dict(state, artifact_hash="sha256:b"))
    # The fleet runs this artifact as R0: the host joins it (a switch), not left alone.
    assert not deploy.settled(dict(artifact, release="R0"), state)
    assert not deploy.settled(artifact, {})


def _answer(unchanged):
    summary = {"hello": {"version": "1.0"}, "api": {"version": "2.1"}}
    return {"release": "20261203T150000Z", "deployer": "ops@ctl", "summary": summary, "unchanged": unchanged}


@pytest.mark.parametrize(
    "unchanged, line",
    [
        ([], "release 20261203T150000Z by ops@ctl: hello 1.0, api 2.1"),
        (["api"], "release 20261203T150000Z by ops@ctl: hello 1.0; unchanged, no task on any host: api"),
        (["api", "hello"], "nothing to deploy; unchanged, no task on any host: api, hello"),
    ],
)
def test_the_headline_names_what_ships_and_what_is_left_alone(unchanged, line):
    assert deploy.headline(_answer(unchanged)) == line


# --- the build side: one wheelhouse per source and platform, one tar per wheelhouse ---------------

TARGET = deploy.target_of("3.11.2", "x86_64", "2.36")
ARM = deploy.target_of("3.13.5", "aarch64", "2.41")


class FakeHouse:
    """wheelhouse.build_or_reuse and check_entry_importable, recording what was built and checked.

    A build writes two files (and one in static/) into the wheelhouse directory; the content
    hash is that of the app's source, so the same source gives the same artifact.
    """

    def __init__(self, monkeypatch):
        self.builds, self.checks = [], []
        monkeypatch.setattr(deploy.wheelhouse, "build_or_reuse", self.build)
        monkeypatch.setattr(deploy.wheelhouse, "check_entry_importable", self.check)
        monkeypatch.delenv("UV_NO_CACHE", raising=False)

    def build(self, app, house, target, revision):
        self.builds.append((app["name"], target.key, revision))
        (house / "static").mkdir(parents=True, exist_ok=True)
        (house / "MANIFEST.json").write_text(app["source"].get("path", "?"))
        (house / "static" / "app.css").write_text("body{}")
        digest = __import__("hashlib").sha256(json.dumps(app["source"]).encode()).hexdigest()
        return {"content_hash": f"sha256:{digest}", "version": "1.2", "project": app["name"].upper()}

    def check(self, house, app):
        # The check installs the wheelhouse built for this app and platform.
        assert (house / "MANIFEST.json").read_text() == app["source"].get("path", "?")
        self.checks.append((app["name"], os.environ.get("UV_NO_CACHE")))
        return deploy.wheelhouse.EntryCheck(True, f"entry {app['entry']} imports")


def _app(name, path="/src/x", **extra):
    source = {"requirement": f"{path}==1", "path": path}
    return dict({"name": name, "source": source, "entry": "pkg.wsgi:app"}, **extra)


def test_the_artifact_is_a_tar_of_the_wheelhouse_named_by_app_platform_and_hash(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    art = deploy.build_artifact(_app("hello"), TARGET, tmp_path)
    digest = fake.build(_app("hello"), tmp_path / "scratch", TARGET, "")["content_hash"]
    assert art["hash"] == digest and art["hash_dir"] == digest.removeprefix("sha256:")[:16]
    assert art["tar"] == str(tmp_path / "artifacts" / f"hello-cp311-x86_64-glibc2.36-{art['hash_dir']}.tar")
    assert (art["version"], art["project"], art["source_revision"]) == ("1.2", "HELLO", "/src/x==1")
    assert art["entry_check"] == "entry pkg.wsgi:app imports"
    assert isinstance(art["seconds"], float) and 0 <= art["seconds"] < 60
    with tarfile.open(art["tar"]) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"MANIFEST.json", "static/app.css"}  # files only, paths inside the wheelhouse
        assert all(m.isfile() for m in members.values())
        assert tar.extractfile("static/app.css").read() == b"body{}"
    assert not list((tmp_path / "artifacts").glob("*.tmp"))


def test_apps_sharing_source_and_platform_build_one_wheelhouse(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    apps = [_app("hello"), _app("admin"), _app("api", "/src/api"), _app("static", static_dir="assets")]
    result = deploy.build_all(apps, {TARGET.key: TARGET, ARM.key: ARM}, tmp_path, check_entry=False)
    # hello and admin serve one project: built once per platform; api and static differ in what they hold.
    expected = [("hello", "/src/x"), ("api", "/src/api"), ("static", "/src/x")]
    assert sorted(fake.builds) == sorted((n, t.key, f"{p}==1") for n, p in expected for t in (TARGET, ARM))
    assert list(result) == ["hello", "admin", "api", "static"]
    assert list(result["hello"]) == sorted([TARGET.key, ARM.key])
    assert result["admin"][ARM.key]["hash"] == result["hello"][ARM.key]["hash"]
    assert result["api"][ARM.key]["hash"] != result["hello"][ARM.key]["hash"]
    # Each app still gets its own tar, named for it.
    assert Path(result["admin"][TARGET.key]["tar"]).name.startswith("admin-cp311-x86_64-glibc2.36-")
    assert Path(result["admin"][TARGET.key]["tar"]).is_file()
    assert result["hello"][TARGET.key]["entry_check"] == "skipped: turned off" and not fake.checks


def test_build_all_builds_only_the_apps_asked_for(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    result = deploy.build_all([_app("hello"), _app("api", "/src/api")], {TARGET.key: TARGET}, tmp_path, only=["api"])
    assert list(result) == ["api"] and [b[0] for b in fake.builds] == ["api"]
    assert fake.checks == [("api", "1")]  # the entry check is on unless turned off
    assert set(deploy.build_all([_app("hello")], {TARGET.key: TARGET}, tmp_path, only=None)) == {"hello"}


def test_the_entry_check_runs_once_per_wheelhouse_and_entry_without_uvs_cache(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    first = deploy.build_artifact(_app("hello"), TARGET, tmp_path)
    again = deploy.build_artifact(_app("hello"), TARGET, tmp_path)
    assert fake.checks == [("hello", "1")]  # uv's cache off during the check only
    assert again["entry_check"] == first["entry_check"] == "entry pkg.wsgi:app imports"
    assert "UV_NO_CACHE" not in os.environ
    deploy.build_artifact(_app("hello", entry="pkg.other:app"), TARGET, tmp_path)  # another entry
    deploy.build_artifact(_app("hello", "/src/new"), TARGET, tmp_path)  # another wheelhouse
    deploy.build_artifact(_app("hello"), ARM, tmp_path)  # another platform
    assert len(fake.checks) == 4
    deploy.build_artifact(_app("hello", "/src/newer"), TARGET, tmp_path, check_entry=False)
    assert len(fake.checks) == 4


def test_the_entry_check_restores_the_callers_uv_no_cache(monkeypatch, tmp_path):
    FakeHouse(monkeypatch)
    monkeypatch.setenv("UV_NO_CACHE", "0")
    deploy.build_artifact(_app("hello"), TARGET, tmp_path)
    assert os.environ["UV_NO_CACHE"] == "0"

    def fails(house, app):
        assert os.environ["UV_NO_CACHE"] == "1"
        raise PyfleetError("app hello: entry pkg.wsgi:app does not import")

    monkeypatch.setattr(deploy.wheelhouse, "check_entry_importable", fails)
    with pytest.raises(PyfleetError, match="does not import"):
        deploy.build_artifact(_app("hello", "/src/broken"), TARGET, tmp_path)
    assert os.environ["UV_NO_CACHE"] == "0"
    monkeypatch.delenv("UV_NO_CACHE")
    with pytest.raises(PyfleetError):
        deploy.build_artifact(_app("hello", "/src/broken"), TARGET, tmp_path)
    assert "UV_NO_CACHE" not in os.environ


def test_an_existing_tar_of_the_same_hash_is_reused(monkeypatch, tmp_path):
    FakeHouse(monkeypatch)
    tar = Path(deploy.build_artifact(_app("hello"), TARGET, tmp_path)["tar"])
    tar.write_bytes(b"kept")
    assert deploy.build_artifact(_app("hello"), TARGET, tmp_path)["tar"] == str(tar)
    assert tar.read_bytes() == b"kept"


def test_the_controller_keeps_the_ten_newest_tars_of_an_app(tmp_path):
    for i in range(13):
        for name in ("hello", "api"):
            path = tmp_path / f"{name}-cp311-x86_64-glibc2.36-{i:016x}.tar"
            path.write_bytes(b"x")
            os.utime(path, (1000 + i, 1000 + i))
    deploy._prune_artifacts(tmp_path, "hello", keep=10)
    left = sorted(p.name for p in tmp_path.glob("hello-*.tar"))
    assert left == [f"hello-cp311-x86_64-glibc2.36-{i:016x}.tar" for i in range(3, 13)]
    assert len(list(tmp_path.glob("api-*.tar"))) == 13  # another app's tars are its own


def _git(path, *args):
    subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)


def test_source_revision_of_a_path_source_is_its_commit_and_dirty_state(tmp_path):
    repo = tmp_path / "proj"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "pyproject.toml").write_text("[project]\nname='p'\n")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    app = {"source": {"type": "path", "path": str(repo)}}
    assert deploy.source_revision(app) == head.strip()[:12]
    (repo / "pyproject.toml").write_text("[project]\nname='q'\n")
    assert deploy.source_revision(app) == head.strip()[:12] + "+dirty"
    (tmp_path / "plain").mkdir()
    assert deploy.source_revision({"source": {"type": "path", "path": str(tmp_path / "plain")}}) == ""
    assert deploy.source_revision({"source": {"type": "path", "path": str(tmp_path / "missing")}}) == ""


def test_a_change_elsewhere_in_the_repo_leaves_a_sub_project_clean(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text("[project]\nname='p'\n")
    (tmp_path / "notes.txt").write_text("a")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (tmp_path / "notes.txt").write_text("b")
    assert not deploy.source_revision({"source": {"type": "path", "path": str(tmp_path / "proj")}}).endswith("+dirty")


def test_source_revision_of_a_requirement_or_wheel_names_it():
    assert deploy.source_revision({"source": {"requirement": "hello==1.0"}}) == "hello==1.0"
    assert (
        deploy.source_revision({"source": {"wheel": "/w/hello-1.0-py3-none-any.whl"}}) == "hello-1.0-py3-none-any.whl"
    )
    assert deploy.source_revision({}) == ""


def _old_tars(directory, name, count):
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = directory / f"{name}-cp311-x86_64-glibc2.36-{i:016x}.tar"
        path.write_bytes(b"old")
        os.utime(path, (2000 + i, 2000 + i))


def test_pruning_an_app_leaves_the_tars_of_an_app_whose_name_starts_alike(monkeypatch, tmp_path):
    # Bug found with the mutants: "hello-*.tar" also matched hello-api's tars.
    fake = FakeHouse(monkeypatch)
    api = deploy.build_artifact(_app("hello-api", "/src/api"), TARGET, tmp_path)
    os.utime(api["tar"], (1000, 1000))  # built long ago, unchanged since
    _old_tars(tmp_path / "artifacts", "hello", 12)
    deploy.build_artifact(_app("hello"), TARGET, tmp_path)
    assert Path(api["tar"]).is_file()
    assert len(list((tmp_path / "artifacts").glob("hello-cp311-*.tar"))) == 10
    assert fake.builds


def test_a_tar_this_deploy_ships_is_never_pruned(monkeypatch, tmp_path):
    # Bug found with the mutants: a reused tar kept its old mtime, so the next new tar of the
    # same app in the same deploy (another platform) could prune it while the hosts still needed it.
    FakeHouse(monkeypatch)
    _old_tars(tmp_path / "artifacts", "hello", 3)
    x86 = deploy.build_artifact(_app("hello"), TARGET, tmp_path)
    os.utime(x86["tar"], (1000, 1000))  # from an earlier deploy of the same code
    _old_tars(tmp_path / "artifacts", "hello", 12)
    result = deploy.build_all([_app("hello")], {TARGET.key: TARGET, ARM.key: ARM}, tmp_path, check_entry=False)
    assert [Path(a["tar"]).is_file() for a in result["hello"].values()] == [True, True]


def test_main_builds_under_out(monkeypatch, capsys, tmp_path):
    # Bug found with the mutants: --out was parsed and then ignored (always .cache/deploy).
    FakeHouse(monkeypatch)
    request = {
        "apps": [_app("hello")],
        "hosts": {"web1": {"python": "3.11.2", "arch": "x86_64", "glibc": "2.36"}},
        "placement": {"hello": {"web": ["web1"], "workers": []}},
        "release": "20261203T000000Z",
    }
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(json.dumps(request)))
    assert deploy.main(["--out", str(tmp_path), "build"]) == 0
    answer = json.loads(capsys.readouterr().out)
    tar = Path(answer["hosts"]["web1"]["hello"]["tar"])
    assert tar.parent == tmp_path / "artifacts" and tar.is_file()
    assert answer["headline"].startswith("release 20261203T000000Z by ")


def test_main_answers_an_unexpected_failure_as_one_json_line(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("{not json"))
    assert deploy.main(["build"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("}\n") and out.count("\n") == 1
    assert json.loads(out)["error"].startswith("JSONDecodeError: ")


def test_apps_with_other_requirements_build_their_own_wheelhouse_and_key_order_does_not_matter(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    same = _app("admin")
    same["source"] = dict(reversed(list(same["source"].items())))  # the same source written the other way round
    apps = [
        _app("hello", requirements=["a==1"]),
        _app("pinned", requirements=["a==2"]),
        dict(same, requirements=["a==1"]),
    ]
    deploy.build_all(apps, {TARGET.key: TARGET}, tmp_path, check_entry=False)
    assert [b[0] for b in fake.builds] == ["hello", "pinned"]


def test_source_revision_without_git_is_empty(monkeypatch, tmp_path):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(deploy.subprocess, "run", no_git)
    assert deploy.source_revision({"source": {"type": "path", "path": str(tmp_path)}}) == ""

    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], 10)

    monkeypatch.setattr(deploy.subprocess, "run", slow)
    assert deploy.source_revision({"source": {"type": "path", "path": str(tmp_path)}}) == ""


def test_pruning_goes_by_age_not_by_name(tmp_path):
    names = [f"hello-cp311-x86_64-glibc2.36-{h * 16}.tar" for h in "fedcba9876543"]  # newest sorts first
    for age, name in enumerate(names):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1000 + age, 1000 + age))
    deploy._prune_artifacts(tmp_path, "hello", keep=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[3:])


def test_with_sources_takes_relative_paths_from_the_working_directory(monkeypatch, tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text("[project]\nname='x'\n")
    monkeypatch.chdir(tmp_path)
    apps = deploy.with_sources([dict(APPS[0], entry="a.b:c")], {"hello": "proj"})
    assert apps == [{"name": "hello", "entry": "a.b:c", "source": {"type": "path", "path": str(tmp_path / "proj")}}]


def _request(**extra):
    return dict(
        {
            "apps": [_app("hello"), _app("other", "/src/other")],
            "hosts": {
                "a-idle": {"python": "3.11.2", "arch": "x86_64", "glibc": "2.36"},
                "web1": {"python": "3.11.2", "arch": "x86_64", "glibc": "2.36"},
            },
            "placement": {"hello": {"web": ["web1"], "workers": []}, "other": {"web": [], "workers": ["web1"]}},
            "release": "20261203T000000Z",
        },
        **extra,
    )


def test_plan_builds_for_every_host_with_an_app_and_gives_a_new_artifact_the_new_id(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    answer = deploy.plan(_request(), out_dir=tmp_path)
    assert sorted(answer["hosts"]) == ["web1"]  # a-idle runs no app: no build for it, no entry
    assert {name: a["release"] for name, a in answer["hosts"]["web1"].items()} == {
        "hello": "20261203T000000Z",
        "other": "20261203T000000Z",
    }
    assert sorted(b[0] for b in fake.builds) == ["hello", "other"] and len(fake.checks) == 2
    assert answer["unchanged"] == [] and answer["release"] == "20261203T000000Z"


def test_plan_builds_only_the_apps_asked_for(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    answer = deploy.plan(_request(only=["other"]), out_dir=tmp_path)
    assert list(answer["hosts"]["web1"]) == ["other"] and [b[0] for b in fake.builds] == ["other"]


def test_plan_checks_entries_unless_the_request_turns_it_off(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    answer = deploy.plan(_request(check_entry=False), out_dir=tmp_path)
    assert fake.checks == [] and answer["summary"]["hello"]["entry_check"] == "skipped: turned off"


def test_plan_builds_the_sources_given_for_the_deploy(monkeypatch, tmp_path):
    fake = FakeHouse(monkeypatch)
    (tmp_path / "branch").mkdir()
    (tmp_path / "branch" / "pyproject.toml").write_text("[project]\nname='x'\n")
    answer = deploy.plan(_request(sources={"hello": str(tmp_path / "branch")}), out_dir=tmp_path / "out")
    built = {b[0]: b for b in fake.builds}
    assert built["hello"][2] == ""  # a path source outside git: no revision
    assert answer["summary"]["hello"]["source_revision"] == ""
    assert answer["summary"]["other"]["source_revision"] == "/src/other==1"


def test_plan_without_apps_on_the_hosts_is_one_exact_line():
    with pytest.raises(PyfleetError) as caught:
        deploy.plan({"apps": APPS, "hosts": {}, "placement": {}})
    assert str(caught.value) == (
        "no app runs on the hosts of this deploy; check pyfleet_apps hosts, deploy_apps and --limit"
    )


def test_shared_release_prefers_current_over_present_then_present_then_newest():
    def info(current, *releases):
        return {"apps": {"hello": {"current": current, "release_hashes": dict.fromkeys(releases, "sha256:b")}}}

    a, b, c = "20261124T050000Z", "20261124T050100Z", "20261124T050200Z"
    # a is kept on all three hosts but current on none; b is current on two.
    infos = {"web1": info(b, a, b), "web2": info(b, a, b), "web3": info("x", a)}
    assert deploy.shared_release("hello", dict.fromkeys(infos, "sha256:b"), infos, "fresh") == b
    # Current nowhere: the release present on most hosts.
    infos = {"web1": info("x", a, c), "web2": info("x", a), "web3": info("x", a)}
    assert deploy.shared_release("hello", dict.fromkeys(infos, "sha256:b"), infos, "fresh") == a
    # A tie: the newest.
    infos = {"web1": info("x", a, c)}
    assert deploy.shared_release("hello", {"web1": "sha256:b"}, infos, "fresh") == c


def test_the_headline_of_an_app_without_a_version():
    answer = {"release": "R", "deployer": "ops@ctl", "summary": {"hello": {}}, "unchanged": []}
    assert deploy.headline(answer) == "release R by ops@ctl: hello"


def test_main_without_a_command_or_with_help(capsys):
    with pytest.raises(SystemExit) as caught:
        deploy.main([])
    assert caught.value.code == 2
    with pytest.raises(SystemExit):
        deploy.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: python -m pyfleet.deploy ")
    assert "Controller side of a deploy: one release id, one artifact per app and host platform." in out
    assert " build build the artifacts of a deploy (request on stdin, see plan()) " in out


def test_main_builds_under_cache_deploy_by_default(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(deploy, "plan", lambda request, out_dir: seen.append(out_dir) or {"ok": True})
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("{}"))
    assert deploy.main(["build"]) == 0
    assert seen == [deploy.DEFAULT_OUT] and deploy.DEFAULT_OUT == deploy.ROOT / ".cache" / "deploy"
    assert json.loads(capsys.readouterr().out) == {"ok": True}
