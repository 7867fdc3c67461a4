"""The bad-input suite's tools: the connection listener, the fake ssh, inventories as data, in-process fab."""

import selectors
import socket
import threading
from pathlib import Path

import yaml
from invoke import Config, Context, Exit

from pyfleet.shell import ROOT

LAB = ROOT / "inventory" / "lab"
# Each host connects at its own loopback address (the listener records which) and
# has a private address in 10.0.0.0/8 (the one other hosts would use).
ADDRESSES = {"lb1": 11, "web1": 12, "web2": 13, "broker1": 14, "worker1": 15, "worker2": 16}

FAKE_CLIENT = """#!/bin/sh
# A host may not be contacted: record who tried, then fail as ssh does when it cannot connect.
# Under a lock: Ansible runs a dozen at once, and their lines must not interleave.
(
  flock 9
  printf '%s' "$(basename "$0")" >> "{log}"
  for a in "$@"; do printf ' %s' "$a" >> "{log}"; done
  printf '\\n' >> "{log}"
) 9>> "{log}.lock"
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


def lab_data():
    """The lab inventory as {relative path: YAML data}."""
    return {str(f.relative_to(LAB)): yaml.safe_load(f.read_text()) for f in sorted(LAB.rglob("*.yml"))}


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
