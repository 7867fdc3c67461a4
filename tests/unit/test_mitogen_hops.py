"""pyfleet.mitogen_hops: a connection stack's login interpreter is a hop, set up to run tasks only when asked to.

Real Mitogen: ansible_mitogen's ContextService connects a stack of two local
interpreters (the second started through the first, as sudo is through the SSH
login), processes on this machine.
"""

import os
import sys

import mitogen.master
import pytest
from ansible_mitogen.services import ContextService

from pyfleet import mitogen_hops


def local():
    """A connection spec as ansible_mitogen builds it, for a local interpreter."""
    return {"method": "local", "kwargs": {"python_path": [sys.executable]}, "enable_lru": False}


def children(pid):
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    text = stat.read()
            except OSError:
                continue  # ended meanwhile
            if int(text[text.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


@pytest.fixture
def service(monkeypatch):
    monkeypatch.setattr(ContextService, "get", ContextService.get)  # restored after the test
    monkeypatch.setattr(ContextService, "_connect", ContextService._connect)
    mitogen_hops.install()
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    yield ContextService(router)
    broker.shutdown()
    broker.join()


def test_the_login_interpreter_is_only_a_hop_until_a_task_runs_in_it(service):
    result = service.get([local(), local()])  # as [ssh, sudo]
    assert result["msg"] is None
    hop, runner = result["via"], result["context"]
    assert result["init_child_result"]["fork_context"] is not None  # the last one runs tasks
    hop_pid, runner_pid = hop.call(os.getpid), runner.call(os.getpid)
    # init_child forks a "fork parent" from each interpreter it sets up: the hop has none
    assert children(hop_pid) == [runner_pid]
    assert len(children(runner_pid)) == 1

    # a task without become: the hop is the last of its stack, and is set up now, once
    alone = service.get([local()])
    assert alone["context"] == hop
    assert set(alone["init_child_result"]) >= {"fork_context", "home_dir", "good_temp_dir"}
    assert len(children(hop_pid)) == 2
    again = service.get([local()])
    assert again["init_child_result"] is alone["init_child_result"]
    assert len(children(hop_pid)) == 2


def test_install_patches_once(service):
    patched = ContextService.get
    mitogen_hops.install()
    assert ContextService.get is patched
    # mitogen.service finds the method by these: the patch keeps them
    assert patched.mitogen_service__policies
    assert patched.mitogen_service__arg_spec == {"stack": list}


def test_another_ansible_mitogen_connect_is_left_as_it_is(monkeypatch):
    monkeypatch.setattr(ContextService, "get", ContextService.get)
    monkeypatch.setattr(ContextService, "_connect", ContextService._connect)
    monkeypatch.setattr(mitogen_hops, "MIRRORED_CONNECT", "0" * 64)  # as after an upgrade
    stock = ContextService.get
    mitogen_hops.install()
    assert ContextService.get is stock
