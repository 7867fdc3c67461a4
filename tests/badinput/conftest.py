"""Bad inventories, made from the lab's, and proof that no command touched a host while refusing one.

Each case is the lab inventory (``inventory/lab``, read as data) plus one mutation,
written to a directory of its own. Every host is pointed at a loopback address
(``ansible_host`` 127.0.0.1x) and one port on which this session listens: any
TCP connection (Fabric/paramiko, ssh) is recorded there. A fake ``ssh`` (and
``scp``, ``sftp``) first on PATH appends its argv to a log and exits 255, so
Ansible (Mitogen or not) never really connects either. ``guard`` also replaces
``ansible.playbook`` and Fabric's ``Connection`` for the in-process runs: a
command that gets that far has reached the hosts.
"""

import copy
import os
import stat
import types
from concurrent.futures import ThreadPoolExecutor

import pytest
from badinput_harness import ADDRESSES, FAKE_CLIENT, Listener, lab_data, write_inventory

from pyfleet import ansible, inventory, remote
from pyfleet.errors import PyfleetError


@pytest.fixture(scope="session")
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture(scope="session")
def fake_bin(tmp_path_factory):
    """A directory with fake ssh/scp/sftp, put first on PATH for the whole session; yields the log file."""
    d = tmp_path_factory.mktemp("fakebin")
    log = d / "contacted.log"
    log.write_text("")
    for name in ("ssh", "scp", "sftp"):
        f = d / name
        f.write_text(FAKE_CLIENT.format(log=log))
        f.chmod(f.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{d}:{old}"
    yield log
    os.environ["PATH"] = old


@pytest.fixture(scope="session")
def base(listener):
    """The lab inventory as data, every host at its loopback address and the listener's port."""
    data = lab_data()
    data["group_vars/all/connection.yml"] = {
        "ansible_port": listener.port,
        "ansible_user": "root",
        "ansible_ssh_common_args": "-o ConnectTimeout=2",
    }
    for host, n in ADDRESSES.items():
        hv = data.setdefault(f"host_vars/{host}.yml", {}) or {}
        hv.update(ansible_host=f"127.0.0.{n}", pyfleet_private_address=f"10.99.0.{n}")
        data[f"host_vars/{host}.yml"] = hv
    return data


@pytest.fixture(scope="session")
def make_inventory(base, tmp_path_factory):
    """make_inventory(name, mutate) -> the directory of the lab inventory after ``mutate(data, dir)``."""
    root = tmp_path_factory.mktemp("inventories")

    def make(name, mutate=None):
        directory = root / f"bad-{name}"
        if directory.exists():
            return directory
        data = copy.deepcopy(base)
        if mutate:
            mutate(data, directory)
        return write_inventory(directory, data)

    return make


class Contact(Exception):
    """Raised by the guards: the command got as far as a host."""


@pytest.fixture
def guard(monkeypatch, fake_bin, listener):
    """In-process runs may not reach a host: ansible-playbook and Fabric connections are recorded and refused.

    Yields the list of attempts; the fake ssh log and the listener must stay empty too.
    """
    attempts = []

    def playbook(inventory_path, name, *args, **kwargs):
        attempts.append(f"ansible-playbook {name} {' '.join(args)}")
        raise PyfleetError(f"reached the hosts: ansible-playbook {name}")

    class Connection:
        def __init__(self, host, user=None, port=None, **kwargs):
            self.host, self.user, self.port = host, user, port
            self.client = types.SimpleNamespace(
                load_system_host_keys=lambda *a: None, set_missing_host_key_policy=lambda *a: None
            )

        def open(self):
            attempts.append(f"fabric {self.host}")
            raise OSError(f"reached the host {self.host}")

        def run(self, *args, **kwargs):
            attempts.append(f"fabric {self.host}")
            raise OSError(f"reached the host {self.host}")

        def close(self):
            pass

    monkeypatch.setattr(ansible, "playbook", playbook)
    monkeypatch.setattr(remote, "Connection", Connection)
    before_log, before_seen = fake_bin.read_text(), list(listener.seen)
    yield attempts
    assert fake_bin.read_text() == before_log, "the fake ssh was run"
    assert listener.seen == before_seen, "a host's port was connected to"


_LOADED = {}


def _load_once(real, path, with_connection=True):
    key = (str(path), with_connection)
    if key not in _LOADED:
        try:
            _LOADED[key] = real(path, with_connection)
        except PyfleetError as exc:
            _LOADED[key] = exc
    return _LOADED[key]


@pytest.fixture(scope="session")
def corpus(make_inventory):
    """Every case's inventory, written and read by ansible-inventory side by side once (the slow part)."""
    from badinput_cases import CASES

    dirs = [make_inventory(c.id, c.mutate) for c in CASES] + [make_inventory("base")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda d: _load_once(inventory.load, d), dirs))
    return dirs


@pytest.fixture
def cached_load(monkeypatch, corpus):
    """Each inventory directory is read by ansible-inventory once per session (every command sees that result)."""
    real = inventory.load

    def load(path, with_connection=True):
        result = _load_once(real, path, with_connection)
        if isinstance(result, PyfleetError):
            raise PyfleetError(str(result))
        return result

    monkeypatch.setattr(inventory, "load", load)
