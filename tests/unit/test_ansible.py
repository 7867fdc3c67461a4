"""pyfleet.ansible.playbook with a stand-in ansible-playbook: what it is run with, and the line a failed run ends with.

The stand-in (a Python script) records its arguments, working directory and
environment, prints the output the test gives it, writes the failures the test
gives it where the pyfleet_failures callback would (``$PYFLEET_FAILURES``), and
exits with the test's code. tests/unit/test_playbook_failures.py runs the real
ansible-playbook; this file is the fast one.
"""

import json
import sys
import textwrap
from pathlib import Path

import pytest

from pyfleet import ansible, lab
from pyfleet.errors import PyfleetError

FAKE = """#!{python}
import json, os, pathlib, sys
here = pathlib.Path({here!r})
script = json.loads((here / "script.json").read_text())
env = {{k: v for k, v in os.environ.items() if k.startswith(("ANSIBLE_", "PYFLEET_", "PYTHON", "PATH"))}}
(here / "called.json").write_text(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": env}}))
if script.get("failures") is not None:
    pathlib.Path(os.environ["PYFLEET_FAILURES"]).write_text(json.dumps(script["failures"]))
sys.stdout.write(script.get("out", ""))
sys.stdout.flush()
sys.stderr.write(script.get("err", ""))
sys.exit(script.get("rc", 0))
"""

RECAP = """
PLAY RECAP *********************************************************************
lb1                        : ok=13   changed=5    unreachable=0    failed=0    skipped=2
web1                       : ok=3    changed=2    unreachable=0    failed=0    skipped=0
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """set(out=..., rc=..., failures=...) scripts the next run; called() what it was run with."""
    script = tmp_path / "ansible-playbook"
    script.write_text(FAKE.format(python=sys.executable, here=str(tmp_path)))
    script.chmod(0o755)
    monkeypatch.setattr(ansible, "tool", lambda name: str(script) if name == "ansible-playbook" else None)
    monkeypatch.setattr(lab, "LAB_DIR", tmp_path / ".lab")
    monkeypatch.delenv("ANSIBLE_CALLBACKS_ENABLED", raising=False)
    monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.chdir(tmp_path)  # the run's directory is the repo's, not ours

    class Fake:
        path = script

        @staticmethod
        def set(**kwargs):
            (tmp_path / "script.json").write_text(json.dumps(kwargs))

        @staticmethod
        def called():
            return json.loads((tmp_path / "called.json").read_text())

    Fake.set()
    return Fake


def test_a_run_streams_its_output_and_returns_the_recap(fake, tmp_path, capsys):
    fake.set(out="PLAY [all]\n" + RECAP)
    got = ansible.playbook(tmp_path / "prod", "site", "--limit", "web1")
    assert got == {
        "lb1": {"ok": 13, "changed": 5, "unreachable": 0, "failed": 0},
        "web1": {"ok": 3, "changed": 2, "unreachable": 0, "failed": 0},
    }
    assert capsys.readouterr().out == "PLAY [all]\n" + RECAP
    called = fake.called()
    playbook = str(ansible.ROOT / "playbooks" / "site.yml")
    assert called["argv"] == ["-i", str(tmp_path / "prod"), playbook, "--limit", "web1"]
    assert called["cwd"] == str(ansible.ROOT)
    env = called["env"]
    assert env["ANSIBLE_CONFIG"] == str(ansible.ROOT / "ansible.cfg") and env["PYTHONUNBUFFERED"] == "1"
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "pyfleet_failures" and "ANSIBLE_STRATEGY" not in env
    # The failures file was a fresh temporary file, removed after the run.
    assert Path(env["PYFLEET_FAILURES"]).name.startswith("pyfleet-failures-")
    assert env["PYFLEET_FAILURES"].endswith(".json") and not Path(env["PYFLEET_FAILURES"]).exists()


def test_quiet_keeps_the_output_for_the_caller_only_and_extra_env_and_linear_reach_ansible(fake, tmp_path, capsys):
    fake.set(out="one\ntwo\n" + RECAP)
    lines = ["before\n"]
    ansible.playbook(
        tmp_path / "prod", Path("/some/play.yml"), mitogen=False, quiet=True, extra_env={"PYFLEET_X": "1"}, output=lines
    )
    assert capsys.readouterr().out == ""
    assert lines[:3] == ["before\n", "one\n", "two\n"] and "".join(lines[3:]) == RECAP
    called = fake.called()
    assert called["argv"][-1] == "/some/play.yml"
    assert called["env"]["PYFLEET_X"] == "1" and called["env"]["ANSIBLE_STRATEGY"] == "linear"


def test_extra_env_cannot_move_the_failures_file(fake, tmp_path):
    elsewhere = tmp_path / "mine.json"
    fake.set(out=RECAP)
    ansible.playbook(tmp_path / "prod", "site", extra_env={"PYFLEET_FAILURES": str(elsewhere)})
    assert fake.called()["env"]["PYFLEET_FAILURES"] != str(elsewhere)


def test_the_lab_connection_file_is_a_second_inventory_when_it_exists(fake, tmp_path):
    conn = tmp_path / ".lab" / "prod" / "connection.yml"
    assert ansible.inventory_args(tmp_path / "prod") == ["-i", str(tmp_path / "prod")]
    conn.parent.mkdir(parents=True)
    conn.write_text("all: {}\n")
    assert ansible.inventory_args(tmp_path / "prod") == ["-i", str(tmp_path / "prod"), "-i", str(conn)]
    fake.set(out=RECAP)
    ansible.playbook(tmp_path / "prod", "site")
    assert fake.called()["argv"][:4] == ["-i", str(tmp_path / "prod"), "-i", str(conn)]


def test_a_failed_run_ends_with_the_callbacks_line(fake, tmp_path):
    failures = {
        "failures": [
            {"host": "web1", "line": "web1: task 'x' failed: boom", "fix": "fix x"},
            {"host": "web2", "line": "web2: task 'y' failed: bang", "fix": ""},
        ],
        "failed_hosts": ["web1", "web2"],
    }
    fake.set(out="fatal: [web1]: FAILED! => {}\n", rc=2, failures=failures)
    with pytest.raises(PyfleetError) as caught:
        ansible.playbook(tmp_path / "prod", "site", quiet=True)
    assert str(caught.value) == "web1: task 'x' failed: boom; fix x; also failed: web2"


def test_without_records_the_first_error_line_of_the_output(fake, tmp_path):
    out = textwrap.dedent("""\
        TASK [x]
        fatal: [web1]: FAILED! => {"changed": false, "msg": "no \\"pkg\\" here"}
        fatal: [lb1]: FAILED! => {"msg": "second"}
        PLAY RECAP ****
        lb1                        : ok=1    changed=0    unreachable=0    failed=1    skipped=0
        web1                       : ok=1    changed=0    unreachable=1    failed=0    skipped=0
        web2                       : ok=1    changed=0    unreachable=0    failed=0    skipped=0
        """)
    fake.set(out=out, rc=0)  # ansible's exit code 0, but the recap says two hosts failed
    with pytest.raises(PyfleetError) as caught:
        ansible.playbook(tmp_path / "prod", "site", quiet=True)
    assert str(caught.value) == 'playbook site failed on lb1, web1: no \\"pkg\\" here; fix it and run again'


def test_a_run_that_failed_before_any_host_names_none(fake, tmp_path):
    fake.set(out="ERROR! the playbook: x could not be found\n", rc=1, failures={})
    with pytest.raises(PyfleetError) as caught:
        ansible.playbook(tmp_path / "prod", "site", quiet=True)
    assert str(caught.value) == (
        "playbook site failed: ERROR! the playbook: x could not be found; fix it and run again"
    )
    fake.set(out="nothing useful\n", rc=4)
    with pytest.raises(PyfleetError, match=r"^playbook site failed: see the output above; fix it and run again$"):
        ansible.playbook(tmp_path / "prod", "site", quiet=True)


@pytest.mark.parametrize(
    "line, said",
    [
        ("[ERROR]: no such host", "[ERROR]: no such host"),
        ("ERROR! bad yaml", "ERROR! bad yaml"),
        ('web1 | UNREACHABLE! => {"msg": "ssh: timed out", "unreachable": true}', "ssh: timed out"),
        ("  fatal: indented is not it", "ERROR! later"),
        ("fatal: " + "x" * 400, "fatal: " + "x" * 293),
        ('fatal: [w]: FAILED! => {"msg":"a\\\\b"}', "a\\\\b"),
    ],
)
def test_first_failure(line, said):
    assert ansible._first_failure(f"ok: [w]\n{line}\nERROR! later\n") == said
    assert ansible._first_failure("ok: [w]\n") == "see the output above"


def test_the_recap_is_read_only_after_play_recap():
    out = "web9 : ok=1 changed=1 unreachable=0 failed=0\nPLAY RECAP\n  web1 : ok=2 changed=1 unreachable=0 failed=1\n"
    assert ansible.parse_recap(out) == {"web1": {"ok": 2, "changed": 1, "unreachable": 0, "failed": 1}}
    assert ansible.total_changed({}) == 0


def test_unreadable_failure_records_are_none(tmp_path):
    assert ansible._read_failures(tmp_path / "missing.json") == {}
    (tmp_path / "broken.json").write_text("{")
    assert ansible._read_failures(tmp_path / "broken.json") == {}
    (tmp_path / "ok.json").write_text('{"failed_hosts": []}')
    assert ansible._read_failures(tmp_path / "ok.json") == {"failed_hosts": []}


def test_callbacks_already_enabled_are_kept_once(monkeypatch):
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", " pyfleet_failures, profile_tasks,,profile_tasks ")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = ansible.ansible_env()
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "pyfleet_failures,profile_tasks"
    assert env["PATH"] == f"{ansible.ROOT / '.venv' / 'bin'}:/usr/bin"
    monkeypatch.setenv("ANSIBLE_STRATEGY", "mitogen_linear")
    assert ansible.ansible_env()["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert ansible.ansible_env(mitogen=False)["ANSIBLE_STRATEGY"] == "linear"


def test_playbook_path_takes_a_name_or_a_path():
    assert ansible.playbook_path("site") == ansible.ROOT / "playbooks" / "site.yml"
    assert ansible.playbook_path(Path("x/y.yml")) == Path("x/y.yml")
    with pytest.raises(PyfleetError) as caught:
        ansible.playbook_path("x/y")
    assert "site" in str(caught.value).split("choose one of ")[1].split(", ")


def test_ansibles_stderr_is_part_of_the_output_and_of_the_line(fake, tmp_path, capsys):
    # ansible-playbook prints ERROR! on stderr: the fallback line finds it there.
    fake.set(out="PLAY [all]\n", err="ERROR! couldn't resolve module/action 'nope'\n", rc=4)
    lines = []
    with pytest.raises(PyfleetError) as caught:
        ansible.playbook(tmp_path / "prod", "site", output=lines)
    assert (
        str(caught.value) == "playbook site failed: ERROR! couldn't resolve module/action 'nope'; fix it and run again"
    )
    assert lines == ["PLAY [all]\n", "ERROR! couldn't resolve module/action 'nope'\n"]
    assert capsys.readouterr() == ("".join(lines), "")


def test_a_host_that_recovered_is_left_out_of_the_line(fake, tmp_path):
    failures = {
        "failures": [
            {"host": "web1", "line": "web1: task 'x' failed: boom", "fix": "fix x"},  # rescued later
            {"host": "web2", "line": "web2: task 'y' failed: bang", "fix": "fix y"},
        ],
        "failed_hosts": ["web2"],
    }
    fake.set(out="", rc=2, failures=failures)
    with pytest.raises(PyfleetError) as caught:
        ansible.playbook(tmp_path / "prod", "site", quiet=True)
    assert str(caught.value) == "web2: task 'y' failed: bang; fix y"


def test_ansible_env_without_path_or_unbuffered(monkeypatch):
    monkeypatch.delenv("PATH")
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    env = ansible.ansible_env()
    assert env["PATH"] == f"{ansible.ROOT / '.venv' / 'bin'}:" and env["PYTHONUNBUFFERED"] == "1"


def test_each_inventory_keeps_its_hosts_facts_apart(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", raising=False)
    caches = []
    for inventory in (tmp_path / "staging" / "prod", tmp_path / "production" / "prod", tmp_path / "staging" / "prod"):
        fake.set(out=RECAP)
        ansible.playbook(inventory, "site")
        caches.append(fake.called()["env"]["ANSIBLE_CACHE_PLUGIN_CONNECTION"])
    # Same host names, another inventory: another cache; the same inventory: the same one.
    assert caches[0] != caches[1] and caches[0] == caches[2]
    assert all(Path(c).parent == ansible.ROOT / ".cache" / "facts" and Path(c).name.startswith("prod-") for c in caches)
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", "/srv/facts")
    ansible.playbook(tmp_path / "staging" / "prod", "site")
    assert fake.called()["env"]["ANSIBLE_CACHE_PLUGIN_CONNECTION"] == "/srv/facts"  # the operator's own setting
