"""Tests for pyfleet.deploy: the controller's plan of a deploy (no build needed here)."""

import json
import re

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
    # A new artifact is a change everywhere; forced, nothing is left out.
    monkeypatch.setattr(
        deploy, "build_all", lambda *a, **k: {n: {"cp311-x86_64-glibc2.36": {"hash": "sha256:new"}} for n in k["only"]}
    )
    assert set(deploy.plan(request)["hosts"]["web1"]) == {"hello", "other"}
    monkeypatch.setattr(deploy, "build_all", fake_build_all)
    forced = deploy.plan(dict(request, force=True))
    assert set(forced["hosts"]["web1"]) == {"hello", "other"} and forced["unchanged"] == []


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
