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
import selectors
import socket
import stat
import threading
from pathlib import Path

import pytest
import yaml
from invoke import Config, Context, Exit

from pyfleet import ansible, inventory, remote
from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT

LAB = ROOT / "inventory" / "lab"
# Each host connects at its own loopback address (the listener records which) and
# has a private address in 10.0.0.0/8 (the one other hosts would use).
ADDRESSES = {"lb1": 11, "web1": 12, "web2": 13, "broker1": 14, "worker1": 15, "worker2": 16}

FAKE_CLIENT = """#!/bin/sh
# A host may not be contacted: record who tried, then fail as ssh does when it cannot connect.
printf '%s' "$(basename "$0")" >> "{log}"
for a in "$@"; do printf ' %s' "$a" >> "{log}"; done
printf '\\n' >> "{log}"
echo "ssh: connect to host: Connection refused (pyfleet bad-input tests)" >&2
exit 255
"""


class Listener:
    """Accepts TCP connections on ``port`` of each lab host's loopback address and records them."""

    def __init__(self):
        self.seen = []
        self.sockets = []
        self.port = self._bind_all()
        self.selector = selectors.DefaultSelector()
        for s in self.sockets:
            s.listen(16)
            s.setblocking(False)
            self.selector.register(s, selectors.EVENT_READ)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _bind_all(self):
        for _ in range(20):
            first = socket.socket()
            first.bind((f"127.0.0.{ADDRESSES['lb1']}", 0))
            port, socks = first.getsockname()[1], [first]
            try:
                for n in ADDRESSES.values():
                    if n != ADDRESSES["lb1"]:
                        s = socket.socket()
                        socks.append(s)
                        s.bind((f"127.0.0.{n}", port))
            except OSError:
                for s in socks:
                    s.close()
                continue
            self.sockets = socks
            return port
        raise RuntimeError("no port free on every test address")

    def _loop(self):
        while not self.stopped.is_set():
            for key, _ in self.selector.select(0.2):
                try:
                    conn, peer = key.fileobj.accept()
                except OSError:
                    continue
                self.seen.append(f"{key.fileobj.getsockname()[0]}:{self.port} from {peer[0]}")
                conn.close()

    def close(self):
        self.stopped.set()
        self.thread.join(2)
        for s in self.sockets:
            s.close()


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


def lab_data():
    """The lab inventory as {relative path: YAML data}."""
    return {str(f.relative_to(LAB)): yaml.safe_load(f.read_text()) for f in sorted(LAB.rglob("*.yml"))}


@pytest.fixture(scope="session")
def base(listener):
    """The lab inventory as data, every host at its loopback address and the listener's port."""
    data = lab_data()
    data["group_vars/all/connection.yml"] = {"ansible_port": listener.port, "ansible_user": "root",
                                             "ansible_ssh_common_args": "-o ConnectTimeout=2"}
    for host, n in ADDRESSES.items():
        hv = data.setdefault(f"host_vars/{host}.yml", {}) or {}
        hv.update(ansible_host=f"127.0.0.{n}", pyfleet_private_address=f"10.99.0.{n}")
        data[f"host_vars/{host}.yml"] = hv
    return data


def write_inventory(directory, data):
    """Write {relative path: data} (bytes and str as they are, anything else as YAML) under ``directory``."""
    for rel, content in data.items():
        if content is None:
            continue
        f = Path(directory) / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            f.write_bytes(content)
        elif isinstance(content, str):
            f.write_text(content)
        else:
            f.write_text("---\n" + yaml.safe_dump(content, sort_keys=False, width=1000))
    return Path(directory)


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
            self.host, self.user = host, user

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


@pytest.fixture
def cached_load(monkeypatch):
    """Each inventory directory is read by ansible-inventory once per session (every command sees that result)."""
    real = inventory.load

    def load(path, with_connection=True):
        key = (str(path), with_connection)
        if key not in _LOADED:
            try:
                _LOADED[key] = real(path, with_connection)
            except PyfleetError as exc:
                _LOADED[key] = exc
        if isinstance(_LOADED[key], PyfleetError):
            raise PyfleetError(str(_LOADED[key]))
        return _LOADED[key]

    monkeypatch.setattr(inventory, "load", load)


def context():
    return Context(Config(overrides={"pyfleet": {"inventory": "inventory/lab", "mitogen": True}}))


def run_command(command, directory, tmp_path):
    """Run a fab command in-process on ``directory``; its error line ("error: ...") or None when it succeeded."""
    import tasks

    name, *args = command.split()
    limit = args[args.index("--limit") + 1] if "--limit" in args else None
    calls = {
        "topology": lambda c: tasks.topology(c, inventory=str(directory), picture=str(tmp_path / "topology.svg")),
        "check": lambda c: tasks.check(c, inventory=str(directory), limit=limit),
        "deploy": lambda c: tasks.deploy(c, inventory=str(directory)),
        "site": lambda c: tasks.site(c, inventory=str(directory), limit=limit, check="--check" in args),
    }
    try:
        calls[name](context())
    except Exit as exc:
        return exc.message
    return None
