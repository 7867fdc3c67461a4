"""The pyfleet_paths module, run as Ansible runs it (a process reading its arguments), on a temporary tree."""

import grp
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "pyfleet_paths.py"
USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def run(tmp_path, paths, check=False, diff=False):
    args = tmp_path / "args.json"
    args.write_text(
        json.dumps({"ANSIBLE_MODULE_ARGS": {"paths": paths, "_ansible_check_mode": check, "_ansible_diff": diff}})
    )
    proc = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "old.conf").write_text("stale\n")
    (root / "gone").mkdir()
    (root / "gone" / "inside").write_text("x")
    return root


def wanted(root):
    return [
        {"path": str(root / "srv" / "app"), "state": "directory", "owner": USER, "group": GROUP, "mode": "2750"},
        {"path": str(root / "srv" / "app" / "settings"), "state": "file", "content": "LANG=C.UTF-8\n", "mode": "0640"},
        {"path": str(root / "localtime"), "state": "link", "src": "/usr/share/zoneinfo/UTC"},
        {"path": str(root / "old.conf"), "state": "absent"},
        {"path": str(root / "gone"), "state": "absent"},
        {"path": str(root / "never-there"), "state": "absent"},
    ]


def test_one_run_makes_every_path_and_a_second_changes_nothing(tmp_path, tree):
    first = run(tmp_path, wanted(tree))
    assert first["changed"] is True, first
    assert first["changed_paths"] == [p["path"] for p in wanted(tree)][:5]
    assert mode(tree / "srv" / "app") == 0o2750
    assert (tree / "srv" / "app" / "settings").read_text() == "LANG=C.UTF-8\n"
    assert mode(tree / "srv" / "app" / "settings") == 0o640
    assert os.readlink(tree / "localtime") == "/usr/share/zoneinfo/UTC"
    assert not (tree / "old.conf").exists() and not (tree / "gone").exists()
    second = run(tmp_path, wanted(tree))
    assert second["changed"] is False and second["changed_paths"] == [], second


def test_only_what_differs_changes(tmp_path, tree):
    run(tmp_path, wanted(tree))
    (tree / "srv" / "app" / "settings").write_text("LANG=de_DE.UTF-8\n")
    os.chmod(tree / "srv" / "app", 0o755)
    (tree / "localtime").unlink()
    (tree / "localtime").symlink_to("/usr/share/zoneinfo/Europe/Berlin")
    again = run(tmp_path, wanted(tree), diff=True)
    assert again["changed_paths"] == [
        str(tree / "srv" / "app"),
        str(tree / "srv" / "app" / "settings"),
        str(tree / "localtime"),
    ]
    assert mode(tree / "srv" / "app") == 0o2750
    assert (tree / "srv" / "app" / "settings").read_text() == "LANG=C.UTF-8\n"
    assert os.readlink(tree / "localtime") == "/usr/share/zoneinfo/UTC"
    texts = [d for d in again["diff"] if isinstance(d["before"], str)]
    assert texts == [
        {
            "before_header": str(tree / "srv" / "app" / "settings"),
            "after_header": str(tree / "srv" / "app" / "settings"),
            "before": "LANG=de_DE.UTF-8\n",
            "after": "LANG=C.UTF-8\n",
        }
    ]


def test_check_mode_reports_and_changes_nothing(tmp_path, tree):
    result = run(tmp_path, wanted(tree), check=True)
    assert result["changed_paths"] == [p["path"] for p in wanted(tree)][:5]
    assert not (tree / "srv").exists() and not (tree / "localtime").is_symlink()
    assert (tree / "old.conf").read_text() == "stale\n" and (tree / "gone" / "inside").exists()


def test_a_directory_where_a_file_should_be_is_a_clear_failure(tmp_path, tree):
    result = run(tmp_path, [{"path": str(tree / "gone"), "state": "file", "content": "x"}])
    assert result["failed"] is True
    assert result["msg"].startswith(f"{tree / 'gone'} is a directory")
    assert (tree / "gone" / "inside").exists()


def test_a_link_where_a_file_should_be_is_followed_as_copy_does(tmp_path, tree):
    # Debian 13 links /etc/default/locale to /etc/locale.conf.
    (tree / "locale.conf").write_text("LANG=C\n")
    (tree / "locale").symlink_to("locale.conf")
    entry = {"path": str(tree / "locale"), "state": "file", "content": "LANG=C.UTF-8\n", "mode": "0644"}
    assert run(tmp_path, [entry])["changed_paths"] == [str(tree / "locale")]
    assert os.readlink(tree / "locale") == "locale.conf"
    assert (tree / "locale.conf").read_text() == "LANG=C.UTF-8\n"
    assert mode(tree / "locale.conf") == 0o644
    assert run(tmp_path, [entry])["changed"] is False
