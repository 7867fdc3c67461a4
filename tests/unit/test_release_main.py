"""plugins/modules/pyfleet_release.py as Ansible runs it, and its commands as real processes.

``main`` reads its arguments the way a module does on a host (the JSON Ansible hands
it, here set in ``ansible.module_utils.basic``), checks them with Ansible's own rules
and answers with one JSON result; ``run`` starts real processes.
"""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible.module_utils import basic
from release_module import rel

OLD, NEW = "20261124T050000Z", "20261124T050100Z"


def run_module(monkeypatch, capsys, **args):
    """(exit code, result) of the module run with ``args``, as Ansible runs it on a host."""
    # _ansible_no_log: the module's invocation is not logged to this machine's journal.
    module_args = {"_ansible_no_log": True, **args}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": module_args}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    with pytest.raises(SystemExit) as exited:
        rel.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    result.pop("invocation", None)
    return exited.value.code, result


def web(base, **args):
    """The arguments of a web host's activate."""
    return {
        "action": "activate",
        "app": "hello",
        "base_dir": str(base),
        "unit": "pyfleet-hello",
        "socket_dir": "/run/hello",
        **args,
    }


# --- main ---------------------------------------------------------------------------------------


def test_info_through_ansible(tmp_path, monkeypatch, capsys):
    (tmp_path / "releases" / OLD).mkdir(parents=True)
    (tmp_path / "releases" / OLD / rel.META).write_text('{"artifact_hash": "sha256:one"}', encoding="utf-8")
    code, result = run_module(monkeypatch, capsys, action="info", apps={"hello": str(tmp_path)})
    assert code == 0
    assert result["changed"] is False
    assert result["apps"]["hello"]["releases"] == [OLD]
    assert result["apps"]["hello"]["release_hashes"] == {OLD: "sha256:one"}


def test_a_failure_is_one_line_naming_the_host_and_the_app(tmp_path, monkeypatch, capsys):
    code, result = run_module(monkeypatch, capsys, **web(tmp_path, release=NEW, host="web1"))
    assert code == 1
    assert result == {"failed": True, "msg": f"web1: app hello: release {NEW} does not exist; releases: none"}
    # Without the inventory name, the host's own name.
    code, result = run_module(monkeypatch, capsys, **web(tmp_path, release=NEW))
    assert result["msg"] == f"{socket.gethostname()}: app hello: release {NEW} does not exist; releases: none"


def test_each_action_runs_its_own_step(tmp_path, monkeypatch, capsys):
    (tmp_path / "releases" / OLD).mkdir(parents=True)
    (tmp_path / "releases" / OLD / rel.META).write_text("{}", encoding="utf-8")
    rel.switch_current(str(tmp_path), OLD)
    absent = {"action": "absent", "app": "hello", "base_dir": str(tmp_path)}
    assert run_module(monkeypatch, capsys, **absent, release=NEW) == (0, {"changed": False, "release": NEW})
    code, result = run_module(monkeypatch, capsys, **absent, release=OLD, host="web1")
    assert (code, result["msg"]) == (1, f"web1: app hello: release {OLD} is current; activate another release first")
    code, result = run_module(monkeypatch, capsys, **web(tmp_path, release="previous"), host="web1")
    assert result["msg"] == f"web1: app hello: no release older than {OLD} to roll back to; releases: {OLD}"


def test_check_mode_reports_and_changes_nothing(tmp_path, monkeypatch, capsys):
    code, result = run_module(monkeypatch, capsys, **web(tmp_path, release=NEW), _ansible_check_mode=True)
    assert (code, result) == (0, {"changed": True, "release": NEW, "previous": None, "pruned": [], "seconds": {}})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, error",
    [
        ({"socket_dir": None}, "action is activate but any of the following are missing: socket_dir, celery_app"),
        (
            {"celery_app": "hello.tasks:app"},
            "parameters are mutually exclusive: unit|celery_app, socket_dir|celery_app",
        ),
        (
            {"unit": None, "socket_dir": None, "celery_app": "hello.tasks:app"},
            "missing parameter(s) required by 'celery_app': user, group",
        ),
        ({"action": "deploy"}, "value of action must be one of: info, build, activate, absent, got: deploy"),
    ],
)
def test_ansible_refuses_arguments_before_the_module_runs(tmp_path, monkeypatch, capsys, args, error):
    """``args``: arguments changed (None: left out, as a task that does not name them)."""
    task = dict(web(tmp_path, release=NEW), **args)
    code, result = run_module(monkeypatch, capsys, **{k: v for k, v in task.items() if v is not None})
    assert code == 1
    assert result["msg"] == error
    assert list(tmp_path.iterdir()) == []


# --- run: real processes ------------------------------------------------------------------------


def test_run_returns_the_exit_code_and_both_streams_as_text():
    script = "import os, sys; print(os.environ['GREETING'], flush=True); sys.stderr.write('warned\\n'); sys.exit(int(sys.argv[1]))"
    rc, out = rel.run([Path(sys.executable), "-c", script, 3], env={"GREETING": "hello"})
    assert (rc, out) == (3, "hello\nwarned\n")


def test_run_feeds_stdin_and_gives_up_at_the_timeout(tmp_path):
    (tmp_path / "in").write_text("from the file\n", encoding="utf-8")
    with open(tmp_path / "in", encoding="utf-8") as stdin:
        assert rel.run([sys.executable, "-c", "print(input().upper())"], stdin=stdin) == (0, "FROM THE FILE\n")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        rel.run([sys.executable, "-c", "import time; time.sleep(3)"], timeout=0.3)
    assert time.monotonic() - started < 2


def test_must_names_the_step_and_the_telling_line():
    assert (
        rel.must([sys.executable, "-c", "import os; print(os.environ['A'])"], "saying", env={"A": "fine"}) == "fine\n"
    )
    with pytest.raises(rel.Failed, match=r"^installing: error: no matching distribution$"):
        rel.must(
            [sys.executable, "-c", "print('error: no matching distribution'); print('bye'); exit(1)"], "installing"
        )
    with pytest.raises(subprocess.TimeoutExpired):
        rel.must([sys.executable, "-c", "import time; time.sleep(3)"], "sleeping", timeout=0.3)
