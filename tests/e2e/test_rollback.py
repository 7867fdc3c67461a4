"""Deploy and rollback under load: hitless, recorded, whole or not at all; one artifact, one release id.

The tests run in file order on the lab and share its state, with a keepalive
HTTPS load on both apps (``under_load``) while the fleet switches:
1. a recorded deploy of changed code to hello and hello-async (release B): no
   request fails, both web hosts serve B's code under one new release id;
2. the measured split: web1 alone is put back on the old release, then a
   deploy of the same code switches it to B again instead of building a new id;
3. a plain rollback while hello-async's old release is missing on web2 refuses
   before any host changes;
4. `fab rollback --batch 2` (both web hosts switch at once): no request fails,
   every host of both apps is back on the old release and says so (summary, history).
At the end a plain deploy of the inventory's own source leaves every host on it
(a host that already runs it with today's config gets no task).
"""

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from pyfleet import audit, commands
from pyfleet.load import get_json

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sampleapp"
FAB = str(ROOT / ".venv" / "bin" / "fab")
APPS = ["hello", "hello-async"]
DOMAINS = {"hello": "hello.lab.test", "hello-async": "hello-async.lab.test"}


def fab(*args, timeout=900):
    """Run `fab ARGS` from the project root; (exit code, stdout, stderr)."""
    proc = subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def serving(inv):
    """{app: {host: current release}} of both apps on every host of each."""
    return {app: {h: s["current"] for h, s in hosts.items()} for app, hosts in commands._fleet(inv, APPS).items()}


def kept(inv):
    """{app: {host: [releases]}}."""
    return {app: {h: s["releases"] for h, s in hosts.items()} for app, hosts in commands._fleet(inv, APPS).items()}


def answers(lb_address, count=8):
    """{app: [JSON bodies of GET /]} through the load balancer, fresh connections (both web hosts take turns)."""
    return {app: [get_json(lb_address, domain) for _ in range(count)] for app, domain in DOMAINS.items()}


def one(per_host):
    ids = set(per_host.values())
    assert len(ids) == 1, f"hosts disagree: {per_host}"
    return ids.pop()


@pytest.fixture(scope="module")
def state():
    return {}


@pytest.fixture(scope="module")
def changed_source(tmp_path_factory):
    """A copy of the sample project with another VERSION (a new artifact)."""
    version = f"4.0.0+e2e.{uuid.uuid4().hex[:6]}"
    dest = tmp_path_factory.mktemp("rollback") / "sampleapp"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist", "build"))
    (dest / "sampleapp" / "version.py").write_text(f'VERSION = "{version}"\n')
    return version, dest


def sources_arg(source):
    return json.dumps({"deploy_sources": {app: str(source) for app in APPS}})


@pytest.fixture(scope="module", autouse=True)
def inventory_source_at_the_end(run_playbook):
    """Leave every host as a deploy of the inventory's own source leaves it, as other tests expect.

    A plain deploy: the hosts that already run that artifact with today's config
    (the plain rollback's work, often) get no task; the others switch to it.
    """
    yield
    run_playbook("deploy")


def test_a_deploy_of_changed_code_fails_no_request_and_is_recorded(
    inv, lab, lb_address, run_playbook, under_load, changed_source, state, capsys
):
    version, source = changed_source
    before = serving(inv)
    if any(len(set(per_host.values())) > 1 for per_host in before.values()):
        # The shared lab was left split (e.g. by two deploys at once): a deploy
        # of the same code joins every host on one release id of it.
        run_playbook("deploy")
        before = serving(inv)
    old = {app: one(before[app]) for app in APPS}
    old_versions = {app: {b["version"] for b in bodies} for app, bodies in answers(lb_address, 4).items()}
    capsys.readouterr()
    _, report = under_load(
        lambda: commands.run_release_playbook(inv, "deploy", "deploy", ["-e", sources_arg(source)], APPS)
    )
    out = capsys.readouterr().out
    assert report.failed == 0, report.describe()
    after = serving(inv)
    new = {app: one(after[app]) for app in APPS}
    assert all(new[app] != old[app] for app in APPS)
    # Through the load balancer: the new code, from every web host, under the one new release id.
    for app, bodies in answers(lb_address).items():
        assert {b["version"] for b in bodies} == {version}, app
        assert {b["host"] for b in bodies} == set(inv.groups["web"]), app
        assert {b["release"] for b in bodies} == {new[app]}, app
    record = audit.history(inv, 1)[-1]
    assert record["action"] == "deploy" and record["result"] == "ok"
    assert record["releases"] == new
    for app in APPS:
        assert record["changes"][app] == {h: {"from": old[app], "to": new[app]} for h in before[app]}
        assert f"{app}: every host on {new[app]}" in out
    state.update(old=old, new=new, deploy_id=record["id"], old_versions=old_versions)


def test_a_host_left_on_the_old_release_rejoins_the_same_release_id(inv, run_playbook, changed_source, state):
    """The measured bug: the next deploy built a new release on web1 for code it already had."""
    assert "new" in state, "needs the deploy above"
    targets = {app: {"web1": state["old"][app]} for app in APPS}
    run_playbook("rollback", "--limit", "web1", "-e", json.dumps({"rollback_targets": targets}))
    split = serving(inv)
    for app in APPS:
        assert split[app]["web1"] == state["old"][app] and split[app]["web2"] == state["new"][app]
    releases_before = kept(inv)
    # A deploy outside fab's history, so that the recorded deploy stays the last one.
    run_playbook("deploy", "-e", sources_arg(changed_source[1]))
    assert serving(inv) == {app: dict.fromkeys(split[app], state["new"][app]) for app in APPS}
    assert kept(inv) == releases_before, "a release was built for code the host already had"
    code, out, err = fab("releases")
    assert code == 0, err
    for app in APPS:
        assert f"{app}: all hosts on {state['new'][app]}" in out


def test_a_rollback_whose_target_is_missing_on_one_host_touches_nothing(inv, host_run, state):
    """The measured bug: web1 rolled back, then the rollback stopped at an app without that release."""
    old = state["old"]["hello-async"]
    hidden = f"/srv/hello-async/.hidden-{old}"
    assert host_run("web2", f"mv /srv/hello-async/releases/{old} {hidden}").rc == 0
    try:
        before = serving(inv)
        records = len(audit.history(inv, 1000))
        code, _, err = fab("rollback")
        lines = [line for line in err.splitlines() if line.strip()]
        assert code != 0 and "Traceback" not in err and len(lines) == 1, err
        assert f"release {old} of app hello-async is not on web2" in lines[0] and "nothing was switched" in lines[0]
        assert serving(inv) == before
        assert len(audit.history(inv, 1000)) == records
        assert not audit.locks(inv)
    finally:
        host_run("web2", f"mv {hidden} /srv/hello-async/releases/{old}")


def test_a_rollback_two_hosts_at_a_time_fails_no_request_and_returns_every_host(inv, lb_address, under_load, state):
    # --batch 2: both web hosts switch at once (each switch is hitless on its own host).
    (code, out, err), report = under_load(lambda: fab("rollback", "--batch", "2"))
    assert code == 0, err + out
    assert report.failed == 0, report.describe()
    served = answers(lb_address)
    assert {app: {b["version"] for b in bodies} for app, bodies in served.items()} == state["old_versions"]
    now = serving(inv)
    for app in APPS:
        assert set(now[app].values()) == {state["old"][app]}, now
        assert f"{app}: back to {state['old'][app]}" in out
        assert f"{app}: every host on {state['old'][app]}" in out
    record = audit.history(inv, 1)[-1]
    assert record["action"] == "rollback" and record["result"] == "ok"
    assert record["releases"] == state["old"]
    assert record["undoes"] == dict.fromkeys(APPS, state["deploy_id"])
    code, out, _ = fab("history", "--last", "1")
    assert code == 0
    assert state["old"]["hello"] in out.splitlines()[-1]
