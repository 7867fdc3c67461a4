"""A copied or templated file already right: the stat answers for the file module (pyfleet.settled_files)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyfleet import settled_files

ROOT = Path(__file__).resolve().parents[2]

# The stat module's answer for a regular file (the fields settled_result reads, and some it does not).
STAT = {
    "exists": True,
    "path": "/etc/app.conf",
    "isreg": True,
    "isdir": False,
    "islnk": False,
    "mode": "0640",
    "uid": 0,
    "gid": 998,
    "pw_name": "root",
    "gr_name": "hello",
    "size": 120,
    "checksum": "abc",
}
# What the copy action passes the file module when the checksums match (its no-change branch).
ARGS = {"dest": "/etc/app.conf", "_original_basename": "app.conf.j2", "recurse": False, "state": "file"}


@pytest.mark.parametrize(
    "asked",
    [
        {},
        {"mode": "0640"},
        {"mode": "640"},
        {"mode": 0o640},
        {"owner": "root", "group": "hello"},
        {"owner": "0", "group": "998"},
        {"mode": "0640", "owner": "root", "group": "hello", "follow": False, "unsafe_writes": False},
        {"seuser": None, "attributes": None, "modification_time": "preserve"},
    ],
)
def test_a_file_with_what_is_asked_needs_no_file_module(asked):
    result = settled_files.settled_result({**ARGS, **asked}, STAT)
    assert result["changed"] is False
    assert result["path"] == "/etc/app.conf"
    assert result["diff"] == {"before": {"path": "/etc/app.conf"}, "after": {"path": "/etc/app.conf"}}
    assert (result["mode"], result["owner"], result["group"], result["state"]) == ("0640", "root", "hello", "file")


@pytest.mark.parametrize(
    ("asked", "stat"),
    [
        ({"mode": "0644"}, STAT),
        ({"mode": 0o644}, STAT),
        ({"mode": "u=rw,g=r"}, STAT),  # symbolic: the file module works it out
        ({"mode": "0980"}, STAT),  # not octal: the file module reports it
        ({"owner": "hello"}, STAT),
        ({"owner": "1000"}, STAT),
        ({"group": "root"}, STAT),
        ({"group": "hello"}, {**STAT, "gr_name": None}),  # a gid without a name
        ({"attributes": "+i"}, STAT),  # stat did not read them
        ({"setype": "etc_t"}, STAT),
        ({"modification_time": "now"}, STAT),
        ({"_diff_peek": True}, STAT),
        ({"something_new": 1}, STAT),
        ({}, {**STAT, "islnk": True, "isreg": False}),
        ({}, {**STAT, "exists": False}),
        ({}, {**STAT, "path": "/etc/other.conf"}),
        ({"state": "directory"}, STAT),
        ({}, None),
    ],
)
def test_anything_the_stat_cannot_prove_runs_the_file_module(asked, stat):
    assert settled_files.settled_result({**ARGS, **asked}, stat) is None


FAKE_FILE_MODULE = """#!/usr/bin/python
# ansible.legacy.file, counted: each run adds a line to CALLS, then the real module runs.
from ansible.module_utils.basic import AnsibleModule  # a new-style module: its arguments as JSON
with open(CALLS, "a") as calls:
    calls.write("file\\n")
from ansible.modules.file import main
main()
"""


def run_template(tmp_path, library):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "write",
                            "ansible.builtin.template": {
                                "src": str(tmp_path / "app.conf.j2"),
                                "dest": str(tmp_path / "app.conf"),
                                "mode": "0640",
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LIBRARY=str(library),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"),
        PYTHONPATH=str(ROOT),
    )
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_a_real_template_run_skips_the_file_module_only_when_nothing_is_to_change(tmp_path):
    """pyfleet's strategy (ansible.cfg) installs the wrap: a counted file module shows each run."""
    calls = tmp_path / "calls"
    library = tmp_path / "library"
    library.mkdir()
    (library / "file.py").write_text(FAKE_FILE_MODULE.replace("CALLS", repr(str(calls))))
    (tmp_path / "app.conf.j2").write_text("port = {{ 8000 + 1 }}\n")

    assert "changed=1" in run_template(tmp_path, library)  # written by the copy module
    assert (tmp_path / "app.conf").read_text() == "port = 8001\n"

    assert "changed=0" in run_template(tmp_path, library)
    assert not calls.exists()  # the content and the mode matched: the stat answered

    (tmp_path / "app.conf").chmod(0o600)
    assert "changed=1" in run_template(tmp_path, library)
    assert calls.read_text() == "file\n"  # the mode differed: the file module ran and set it
    assert oct((tmp_path / "app.conf").stat().st_mode & 0o777) == "0o640"
