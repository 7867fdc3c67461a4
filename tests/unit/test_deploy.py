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
