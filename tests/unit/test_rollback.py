"""Tests for pyfleet.rollback: what a rollback switches, decided before any host changes."""

import subprocess

import pytest

from pyfleet import rollback
from pyfleet.errors import PyfleetError

R0, R1, R2, R3 = "20261124T050000Z", "20261124T050100Z", "20261124T050200Z", "20261124T050300Z"
HOSTS = ("web1", "web2", "worker1")


def hosts(current, releases, **overrides):
    """Every host of an app on ``current`` keeping ``releases``; overrides: {host: (current, releases)}."""
    out = {h: {"current": current, "releases": list(releases)} for h in HOSTS}
    for host, (cur, rels) in overrides.items():
        out[host] = {"current": cur, "releases": list(rels)}
    return out


def deploy_record(rid, changes, result="ok"):
    return {
        "id": rid,
        "action": "deploy",
        "result": result,
        "when": "2026-11-24T05:01:00Z",
        "who": "me@ctl",
        "release": "x",
        "changes": changes,
    }


def moved(app_from, app_to, hosts_=HOSTS):
    return {h: {"from": app_from, "to": app_to} for h in hosts_}


# --- the probe ----------------------------------------------------------------------


def test_probe_lists_current_and_complete_releases(tmp_path):
    base = tmp_path / "hello"
    for rel, complete in ((R0, True), (R1, True), (R2, False)):
        (base / "releases" / rel).mkdir(parents=True)
        if complete:
            (base / "releases" / rel / rollback.META).write_text("{}")
    (base / "current").symlink_to(f"releases/{R1}")
    cmd = rollback.probe_command({"hello": str(base), "nope": str(tmp_path / "nope")})
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    assert rollback.parse_probe(out) == {
        "hello": {"current": R1, "releases": [R0, R1]},
        "nope": {"current": None, "releases": []},
    }


# --- what changed -------------------------------------------------------------------


def test_changes_releases_and_verdicts():
    before = {"hello": hosts(R1, [R1]), "other": hosts(R0, [R0])}
    after = {"hello": hosts(R2, [R1, R2], web2=(R1, [R1, R2])), "other": hosts(R0, [R0])}
    ch = rollback.changes(before, after)
    assert ch["hello"]["web1"] == {"from": R1, "to": R2} and ch["hello"]["web2"] == {"from": R1, "to": R1}
    assert rollback.changed_apps(ch) == ["hello"]
    assert rollback.switched_hosts(ch) == ["web1", "worker1"]
    assert rollback.releases_now(ch) == {"hello": None}
    assert rollback.release_text(ch) == "hello=SPLIT"
    lines = rollback.verdicts(ch)
    assert lines[0].startswith("hello: SPLIT: web1 " + R2 + ", web2 " + R1 + ", worker1 " + R2)
    assert lines[1] == f"other: every host on {R0}"
    assert ["hello", "web2", R1, R1] in rollback.summary_rows(ch)


def test_release_text_of_one_id_and_of_nothing():
    ch = {"a": moved(R0, R1), "b": moved(R0, R1), "c": moved(R0, R0)}
    assert rollback.release_text(ch) == R1
    assert rollback.release_text({"c": moved(R0, R0)}) == "unchanged"


# --- which deploy to undo -----------------------------------------------------------


def test_pick_deploy_takes_the_newest_not_undone_and_walks_back():
    d1 = deploy_record("d1", {"hello": moved(R0, R1)})
    d2 = deploy_record("d2", {"hello": moved(R1, R2), "other": moved(R0, R0)})
    noop = deploy_record("d3", {"hello": moved(R2, R2)})
    record, todo = rollback.pick_deploy([d1, d2, noop], ["hello", "other"])
    assert record["id"] == "d2" and todo == ["hello"]
    undo = {"action": "rollback", "result": "ok", "undoes": {"hello": "d2"}}
    assert rollback.pick_deploy([d1, d2, undo], ["hello"])[0]["id"] == "d1"
    failed = {"action": "rollback", "result": "failed", "undoes": {"hello": "d2"}}
    assert rollback.pick_deploy([d1, d2, failed], ["hello"])[0]["id"] == "d2"
    # Old records (no changes) are never picked.
    assert rollback.pick_deploy([{"action": "deploy", "result": "ok", "release": R1}], ["hello"]) == (None, [])


# --- the plan -----------------------------------------------------------------------


def test_plain_rollback_undoes_every_app_of_the_last_deploy_and_only_those():
    d = deploy_record("d", {"hello": moved(R1, R2), "async": moved(R1, R2), "third": moved(R0, R0)})
    state = {"hello": hosts(R2, [R1, R2]), "async": hosts(R2, [R1, R2]), "third": hosts(R0, [R0])}
    plan = rollback.plan_rollback([d], state, ["hello", "async", "third"])
    assert plan.targets == {"hello": R1, "async": R1}
    assert plan.switch == {"hello": dict.fromkeys(HOSTS, R1), "async": dict.fromkeys(HOSTS, R1)}
    assert plan.undoes == {"hello": "d", "async": "d"}
    assert plan.hosts() == sorted(HOSTS)


def test_a_target_missing_on_one_host_refuses_the_whole_rollback():
    """The measured bug: one app lacks the release on one host; nothing may switch anywhere."""
    d = deploy_record("d", {"hello": moved(R1, R2), "async": moved(R1, R2)})
    state = {"hello": hosts(R2, [R1, R2]), "async": hosts(R2, [R1, R2], web2=(R2, [R2]))}
    with pytest.raises(PyfleetError) as exc:
        rollback.plan_rollback([d], state, ["hello", "async"])
    msg = str(exc.value)
    assert f"release {R1} of app async is not on web2" in msg and "nothing was switched" in msg
    assert "\n" not in msg


def test_a_split_left_by_a_failed_rollback_is_finished_by_the_next():
    d = deploy_record("d", {"hello": moved(R1, R2)})
    state = {"hello": hosts(R2, [R1, R2], web1=(R1, [R1, R2]))}
    plan = rollback.plan_rollback([d], state, ["hello"])
    assert plan.switch == {"hello": {"web2": R1, "worker1": R1}}


def test_first_deploy_has_nothing_to_go_back_to():
    d = deploy_record("d", {"hello": moved(None, R1)})
    with pytest.raises(PyfleetError, match="app hello had no release on web1 before the deploy"):
        rollback.plan_rollback([d], {"hello": hosts(R1, [R1])}, ["hello"])


def test_different_releases_before_the_deploy_need_a_named_one():
    d = deploy_record("d", {"hello": {"web1": {"from": R0, "to": R2}, "web2": {"from": R1, "to": R2}}})
    with pytest.raises(PyfleetError, match=f"--release {R1}"):
        rollback.plan_rollback(
            [d], {"hello": {h: {"current": R2, "releases": [R0, R1, R2]} for h in ("web1", "web2")}}, ["hello"]
        )


def test_hosts_moved_on_since_the_deploy_fall_back_to_their_releases():
    d = deploy_record("d", {"hello": moved(R0, R1)})
    state = {"hello": hosts(R3, [R0, R1, R2, R3])}  # deployed outside fab since
    plan = rollback.plan_rollback([d], state, ["hello"], app_given=True)
    assert plan.targets == {"hello": R2} and plan.undoes == {}
    assert any("not what the deploy of" in note for note in plan.notes)


def test_without_history_every_app_goes_to_the_newest_older_release_every_host_keeps():
    state = {"hello": hosts(R2, [R0, R1, R2], web2=(R2, [R0, R2]))}
    assert rollback.plan_rollback([], state, ["hello"]).targets == {"hello": R0}


def test_without_history_an_app_with_one_release_refuses_before_anything():
    state = {"hello": hosts(R2, [R1, R2]), "third": hosts(R0, [R0])}
    with pytest.raises(PyfleetError, match=f"app third on web1 has no release older than {R0}"):
        rollback.plan_rollback([], state, ["hello", "third"])


def test_without_history_hosts_that_disagree_need_a_named_release():
    state = {"hello": hosts(R2, [R1, R2], web1=(R1, [R1, R2]))}
    with pytest.raises(PyfleetError, match="hosts serve different releases"):
        rollback.plan_rollback([], state, ["hello"])


def test_a_named_release_is_checked_on_every_host_and_skips_hosts_already_on_it():
    state = {"hello": hosts(R2, [R1, R2], web1=(R1, [R1, R2]))}
    plan = rollback.plan_rollback([], state, ["hello"], release=R1)
    assert plan.switch == {"hello": {"web2": R1, "worker1": R1}}
    with pytest.raises(PyfleetError, match=f"release {R0} of app hello is not on web1"):
        rollback.plan_rollback([], state, ["hello"], release=R0)


def test_nothing_to_switch_when_every_host_is_back_already():
    d = deploy_record("d", {"hello": moved(R1, R2)})
    plan = rollback.plan_rollback([d], {"hello": hosts(R1, [R1, R2])}, ["hello"])
    assert plan.switch == {} and plan.undoes == {"hello": "d"}


# --- reading the fleet --------------------------------------------------------------


def test_fleet_state_reads_each_host_once_for_all_its_apps(monkeypatch, tmp_path):
    """Every host runs the probe of exactly its apps (hosts with the same apps in one call), for real in sh."""
    base = {}
    for app, rels, cur in (("hello", (R0, R1), R1), ("async", (R2,), R2)):
        base[app] = tmp_path / app
        for rel in rels:
            (base[app] / "releases" / rel).mkdir(parents=True)
            (base[app] / "releases" / rel / rollback.META).write_text("{}")
        (base[app] / "current").symlink_to(f"releases/{cur}")
    specs = {
        app: {"base_dir": str(path), "hosts": h} for (app, path), h in zip(base.items(), ("web", "all"), strict=True)
    }
    calls = []

    def run_on(inv, hosts, command):
        calls.append((inv, sorted(hosts)))
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
        return dict.fromkeys(hosts, (0, out))

    monkeypatch.setattr(rollback.remote, "run_on", run_on)
    where = {"web": ["web1", "web2"], "all": ["web1", "web2", "worker1"]}
    state = rollback.fleet_state("INV", specs, ["hello", "async"], lambda spec: where[spec["hosts"]])
    assert sorted(calls) == [("INV", ["web1", "web2"]), ("INV", ["worker1"])]
    assert state == {
        "hello": {h: {"current": R1, "releases": [R0, R1]} for h in ("web1", "web2")},
        "async": {h: {"current": R2, "releases": [R2]} for h in HOSTS},
    }


def test_fleet_state_of_a_host_that_does_not_answer_is_no_release(monkeypatch):
    answers = {"web1": (0, f"hello|{R1}| {R0} {R1}\n"), "web2": (255, f"hello|{R1}| {R1}\n")}
    monkeypatch.setattr(rollback.remote, "run_on", lambda inv, hosts, command: {h: answers[h] for h in hosts})
    specs = {"hello": {"base_dir": "/srv/hello"}, "idle": {"base_dir": "/srv/idle"}}
    state = rollback.fleet_state(None, specs, ["hello", "idle"], lambda s: ["web1", "web2"])
    assert state["hello"] == {
        "web1": {"current": R1, "releases": [R0, R1]},
        "web2": {"current": None, "releases": []},
    }
    # An app the probe printed nothing for: not deployed there.
    assert state["idle"] == {h: {"current": None, "releases": []} for h in ("web1", "web2")}


def test_fleet_state_of_apps_on_no_host_asks_nobody(monkeypatch):
    monkeypatch.setattr(rollback.remote, "run_on", lambda *a: pytest.fail("no host to ask"))
    specs = {"hello": {"base_dir": "/srv/hello"}}
    assert rollback.fleet_state(None, specs, ["hello"], lambda s: []) == {"hello": {}}


# --- the lines an operator reads ----------------------------------------------------


def test_parse_probe_skips_noise_and_reads_an_app_without_releases():
    text = f"Warning: something\nhello| {R1} | {R1} {R0}\nidle||\n"
    assert rollback.parse_probe(text) == {
        "hello": {"current": R1, "releases": [R0, R1]},
        "idle": {"current": None, "releases": []},
    }


def test_probe_of_an_app_never_deployed_and_a_path_with_spaces(tmp_path):
    base = tmp_path / "my apps" / "hello"
    (base / "releases" / R0).mkdir(parents=True)
    (base / "releases" / R0 / rollback.META).write_text("{}")
    cmd = rollback.probe_command({"hello": str(base)})
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    assert rollback.parse_probe(out) == {"hello": {"current": None, "releases": [R0]}}


def test_summary_rows_and_verdicts_of_hosts_without_a_release():
    ch = {"hello": {"web1": {"from": None, "to": R1}, "web2": {"from": None, "to": None}}}
    assert rollback.summary_rows(ch) == [["hello", "web1", R1, "-"], ["hello", "web2", "-", "-"]]
    assert rollback.verdicts(ch) == [
        f"hello: SPLIT: web1 {R1}, web2 -; finish with fab rollback or fab deploy --app hello"
    ]
    assert rollback.verdicts({"hello": {"web1": {"from": R1, "to": None}}}) == ["hello: every host on nothing"]


def test_release_text_of_apps_on_different_releases():
    ch = {"b": moved(R0, R2), "a": moved(R0, R1)}
    assert rollback.release_text(ch) == f"a={R1}, b={R2}"
    assert rollback.releases_now(ch) == {"a": R1, "b": R2}


def test_changes_of_an_app_gone_or_new_after():
    before = {"hello": hosts(R1, [R1])}
    assert rollback.changes(before, None)["hello"]["web1"] == {"from": R1, "to": None}
    assert rollback.changes({}, before)["hello"]["web2"] == {"from": None, "to": R1}
    assert rollback.changed_apps(None) == [] and rollback.switched_hosts(None) == []


def test_pick_deploy_skips_other_actions_records_without_id_and_other_apps():
    d1 = deploy_record("d1", {"hello": moved(R0, R1)})
    site = dict(deploy_record("s", {"hello": moved(R1, R2)}), action="site")
    no_id = deploy_record(None, {"hello": moved(R1, R2)})
    other = deploy_record("d2", {"other": moved(R0, R1)})
    assert rollback.pick_deploy([d1, site, no_id, other], ["hello"]) == (d1, ["hello"])
    # A successful rollback of another app leaves hello's deploy to undo.
    undo_other = {"action": "rollback", "result": "ok", "undoes": {"other": "d1"}}
    assert rollback.pick_deploy([d1, undo_other], ["hello"])[0] is d1
    undo_as_deploy = {"action": "deploy", "result": "ok", "undoes": {"hello": "d1"}}
    assert rollback.pick_deploy([d1, undo_as_deploy], ["hello"])[0] is d1


def test_a_plain_rollback_says_which_deploy_it_undoes():
    d = deploy_record("d", {"hello": moved(R1, R2), "async": moved(R1, R2)})
    state = {"hello": hosts(R2, [R1, R2]), "async": hosts(R2, [R1, R2])}
    plan = rollback.plan_rollback([d], state, ["hello", "async"])
    assert plan.notes == ["undoing the deploy of 2026-11-24T05:01:00Z by me@ctl (release x): async, hello"]
    # With --app, the app's last deploy is undone without that note.
    plan = rollback.plan_rollback([d], state, ["hello"], app_given=True)
    assert plan.notes == [] and plan.undoes == {"hello": "d"} and plan.targets == {"hello": R1}


def test_hosts_moved_on_note_names_host_and_release():
    d = deploy_record("d", {"hello": moved(R0, R1)})
    # web1 and worker1 are still where the deploy left them or back before it; web2 moved on.
    state = {"hello": hosts(R3, [R0, R1, R2, R3])}
    plan = rollback.plan_rollback([d], state, ["hello"])
    assert plan.notes[1:] == [
        f"hello: web1 serves {R3}, not what the deploy of 2026-11-24T05:01:00Z left there; "
        "going back from the releases the hosts keep"
    ]
    assert plan.targets == {"hello": R2} and plan.undoes == {}
    # Hosts on the deploy's release or on the one before it have not moved on.
    state = {"hello": hosts(R1, [R0, R1], web2=(R0, [R0, R1]))}
    plan = rollback.plan_rollback([d], state, ["hello"])
    assert plan.undoes == {"hello": "d"} and plan.switch == {"hello": {"web1": R0, "worker1": R0}}


def _message(records, state, apps, **kwargs):
    with pytest.raises(PyfleetError) as caught:
        rollback.plan_rollback(records, state, apps, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_every_refusal_is_one_whole_line():
    first = deploy_record("d", {"hello": {"web2": {"from": None, "to": R1}, "web1": {"from": R0, "to": R1}}})
    assert _message([first], {"hello": hosts(R1, [R0, R1])}, ["hello"]) == (
        "app hello had no release on web2 before the deploy of 2026-11-24T05:01:00Z (its first there); "
        "nothing to roll back to there, nothing was switched; name a release every host keeps: "
        "fab rollback --app hello --release ID (fab releases lists them)"
    )
    split = deploy_record("d", {"hello": {"web1": {"from": R0, "to": R2}, "web2": {"from": R1, "to": R2}}})
    assert _message([split], {"hello": hosts(R2, [R0, R1, R2])}, ["hello"]) == (
        f"app hello ran different releases before the deploy of 2026-11-24T05:01:00Z (web1 {R0}, web2 {R1}); "
        f"nothing was switched; name the one to return to: fab rollback --app hello --release {R1}"
    )
    assert _message([], {"hello": hosts(R2, [R1, R2], web1=(R1, [R1, R2]), web2=(R0, [R0]))}, ["hello"]) == (
        f"app hello: hosts serve different releases (web1 {R1}, web2 {R0}, worker1 {R2}); "
        f"nothing was switched; name the one to return to: fab rollback --app hello --release {R0}"
    )
    assert _message([], {}, ["hello"]) == "app hello runs on no host of this inventory; nothing to roll back"
    assert _message([], {}, ["hello"], release=R1) == (
        "app hello runs on no host of this inventory; nothing to roll back"
    )
    assert _message([], {"hello": hosts(R1, [R1], web2=(None, []))}, ["hello"]) == (
        "app hello is not deployed on web2 (no current release); nothing was switched; "
        "deploy it first: fab deploy --app hello"
    )
    assert _message([], {"hello": hosts(R1, [R1], web1=(R1, []))}, ["hello"]) == (
        f"app hello on web1 has no release older than {R1} (it keeps none); nothing to roll back to, "
        "nothing was switched"
    )
    apart = hosts(R2, [R1, R2], web2=(R2, [R0, R2]))
    assert _message([], {"hello": apart}, ["hello"]) == (
        f"app hello: no release older than {R2} is on every host (web1: {R1}; web2: {R0}; worker1: {R1}); "
        "nothing was switched; name one: fab rollback --app hello --release ID"
    )
    assert _message([], {"hello": hosts(R1, [R1], web1=(R1, []))}, ["hello"], release=R1) == (
        f"release {R1} of app hello is not on web1 (it keeps none); nothing was switched; "
        "fab releases lists the releases each host keeps"
    )


def test_without_history_the_newest_common_older_release_wins():
    state = {"hello": hosts(R3, [R0, R1, R2, R3], web2=(R3, [R0, R1, R3]))}
    assert rollback.plan_rollback([], state, ["hello"]).targets == {"hello": R1}


def test_several_releases_in_a_refusal_are_listed_with_commas():
    assert _message([], {"hello": hosts(R1, [R0, R1], web1=(R1, [R1, R2]))}, ["hello"]).startswith(
        f"app hello on web1 has no release older than {R1} (it keeps {R1}, {R2}); "
    )
    apart = hosts(R3, [R0, R1, R3], web2=(R3, [R2, R3]))
    assert _message([], {"hello": apart}, ["hello"]).startswith(
        f"app hello: no release older than {R3} is on every host (web1: {R0}, {R1}; web2: {R2}; worker1: {R0}, {R1});"
    )
    assert _message([], {"hello": hosts(R1, [R0, R1])}, ["hello"], release=R3) == (
        f"release {R3} of app hello is not on web1 (it keeps {R0}, {R1}); nothing was switched; "
        "fab releases lists the releases each host keeps"
    )


def test_three_releases_before_the_deploy_suggest_the_newest():
    d = deploy_record(
        "d", {"hello": {"web1": {"from": R0, "to": R3}, "web2": {"from": R2, "to": R3}, "web3": {"from": R1, "to": R3}}}
    )
    state = {"hello": {h: {"current": R3, "releases": [R0, R1, R2, R3]} for h in ("web1", "web2", "web3")}}
    assert _message([d], state, ["hello"]).endswith(f"fab rollback --app hello --release {R2}")


def test_the_moved_on_note_names_the_first_host_and_what_it_serves():
    d = deploy_record("d", {"hello": moved(R0, R1)})
    state = {"hello": hosts(R3, [R0, R1, R2, R3])}
    state["hello"]["web2"]["current"] = R3
    state["hello"]["web1"] = {"current": R3, "releases": [R0, R1, R2, R3]}
    state["hello"]["worker1"] = {"current": R3, "releases": [R0, R1, R2, R3]}
    notes = rollback.plan_rollback([d], state, ["hello"], app_given=True).notes
    assert notes == [
        f"hello: web1 serves {R3}, not what the deploy of 2026-11-24T05:01:00Z left there; "
        "going back from the releases the hosts keep"
    ]
    # Two hosts moved on to different releases: the hosts disagree, the first one is named.
    state["hello"]["web1"]["current"] = R2
    assert f"(web1 {R2}, web2 {R3}, worker1 {R3})" in _message([d], state, ["hello"], app_given=True)


def test_a_record_without_a_time_says_so():
    d = deploy_record("d", {"hello": moved(None, R1)})
    del d["when"]
    assert "before the deploy of ? (its first there)" in _message([d], {"hello": hosts(R1, [R1])}, ["hello"])


def test_with_several_apps_given_only_those_the_deploy_changed_come_from_it():
    d = deploy_record("d", {"hello": moved(R1, R2)})
    state = {"hello": hosts(R2, [R1, R2]), "other": hosts(R1, [R0, R1])}
    plan = rollback.plan_rollback([d], state, ["hello", "other"], app_given=True)
    assert plan.targets == {"hello": R1, "other": R0} and plan.undoes == {"hello": "d"}


def test_an_app_the_deploy_changed_but_on_no_host_now_is_refused_in_one_line():
    d = deploy_record("d", {"hello": moved(R1, R2)})
    assert _message([d], {}, ["hello"]) == "app hello runs on no host of this inventory; nothing to roll back"
