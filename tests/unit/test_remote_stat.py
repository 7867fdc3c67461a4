"""pyfleet.remote_stat: copy and template ask the host's stat for what they read, without lsattr and file runs."""

import pytest
from ansible.plugins.action import ActionBase

from pyfleet import remote_stat


class Action(ActionBase):
    """An action with only what _execute_remote_stat uses; its module runs are recorded."""

    def __init__(self):  # the rest of ActionBase is not used here
        self.runs = []

    def run(self, tmp=None, task_vars=None):
        raise NotImplementedError

    def _execute_module(self, module_name=None, module_args=None, **kwargs):
        self.runs.append((module_name, module_args))
        return {"stat": {"exists": True, "checksum": "c0ffee"}}


@pytest.fixture
def lean(monkeypatch):
    monkeypatch.setattr(ActionBase, "_execute_remote_stat", ActionBase._execute_remote_stat)  # restored after
    remote_stat.install()


def test_the_actions_stat_skips_attributes_and_mime_type(lean):
    action = Action()
    assert action._execute_remote_stat("/etc/motd", all_vars={}, follow=False) == {"exists": True, "checksum": "c0ffee"}
    ((name, args),) = action.runs
    assert name == "ansible.legacy.stat"
    assert args["get_attributes"] is False and args["get_mime"] is False
    assert args["path"] == "/etc/motd" and args["get_checksum"] is True  # Ansible's own arguments kept
    assert "_execute_module" not in vars(action)  # the object is left as it was


def test_other_modules_keep_their_arguments():
    args = {"path": "/etc/motd"}
    assert remote_stat.lean_stat_args("ansible.legacy.file", args) is args
    assert remote_stat.lean_stat_args("stat", args) == {"path": "/etc/motd", "get_mime": False, "get_attributes": False}


def test_install_patches_once(lean):
    patched = ActionBase._execute_remote_stat
    remote_stat.install()
    assert ActionBase._execute_remote_stat is patched
