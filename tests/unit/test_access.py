"""How pyfleet reaches hosts: the lab's known_hosts and connection file, host key checks, sudo."""

import base64
import contextlib
import shlex
import socket
import struct
import subprocess
import threading

import paramiko
import pytest
import yaml

from pyfleet import lab, remote
from pyfleet.errors import PyfleetError
from pyfleet.inventory import Inventory


def ed25519(byte):
    """A well-formed ed25519 public key ("type base64") made of one repeated byte."""
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes([byte]) * 32
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


ED_A, ED_B, ED_C = ed25519(1), ed25519(2), ed25519(3)


@pytest.fixture
def the_lab(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "LAB_DIR", tmp_path / ".lab")
    return lab.Lab(Inventory(path=tmp_path / "keylab", hosts={"web1": {}, "web2": {}}))


def test_known_hosts_has_each_key_of_each_host_for_its_lab_address(the_lab):
    entries = {"web1": ("10.89.0.3", [ED_A]), "web2": ("10.89.0.4", [ED_B, ED_C])}
    assert lab.write_known_hosts(the_lab, entries) is True
    assert the_lab.known_hosts == the_lab.state_dir / "known_hosts"
    lines = [line for line in the_lab.known_hosts.read_text().splitlines() if not line.startswith("#")]
    assert lines == [f"10.89.0.3 {ED_A} web1", f"10.89.0.4 {ED_B} web2", f"10.89.0.4 {ED_C} web2"]
    assert lab.read_known_hosts(the_lab) == entries
    # OpenSSH's format, as paramiko (Fabric) reads it: the host name is a comment.
    keys = paramiko.HostKeys(str(the_lab.known_hosts))
    assert keys.lookup("10.89.0.3")["ssh-ed25519"].get_base64() == ED_A.split()[1]
    assert keys.lookup("web1") is None
    assert lab.write_known_hosts(the_lab, entries) is False  # unchanged: not rewritten


def test_a_host_created_anew_gets_its_lines_replaced_and_a_removed_one_none(the_lab):
    lab.write_known_hosts(the_lab, {"web1": ("10.89.0.3", [ED_A]), "web2": ("10.89.0.4", [ED_B])})
    assert lab.write_known_hosts(the_lab, {"web1": ("10.89.0.3", [ED_C]), "web2": ("10.89.0.4", [ED_B])}) is True
    text = the_lab.known_hosts.read_text()
    assert ED_A not in text and f"10.89.0.3 {ED_C} web1" in text and f"10.89.0.4 {ED_B} web2" in text
    lab.write_known_hosts(the_lab, {"web2": ("10.89.0.4", [ED_B])})
    assert "web1" not in the_lab.known_hosts.read_text()


def test_the_connection_file_logs_in_as_deploy_with_sudo_and_checks_host_keys_against_the_lab_file(the_lab):
    the_lab.state_dir.mkdir(parents=True)
    lab.write_connection_file(the_lab, {"web1": "10.89.0.3"})
    data = yaml.safe_load(the_lab.connection_file.read_text())["all"]["vars"]
    assert data["ansible_user"] == lab.LAB_USER == "deploy"
    assert data["ansible_become"] is True
    args = shlex.split(data["ansible_ssh_common_args"])
    assert f"UserKnownHostsFile={the_lab.known_hosts}" in args
    assert "StrictHostKeyChecking=yes" in args
    assert not any(a.endswith("=no") or a == "UserKnownHostsFile=/dev/null" for a in args), args
    # Fabric reads the same settings: checked, against the lab's file only.
    assert remote.host_key_policy(data) == (True, [the_lab.known_hosts])


@pytest.mark.parametrize(
    "hv, expected",
    [
        ({}, (True, [remote.Path.home() / ".ssh/known_hosts", remote.Path("/etc/ssh/ssh_known_hosts")])),
        (
            {"ansible_ssh_common_args": "-o UserKnownHostsFile=/k1 -o StrictHostKeyChecking=yes"},
            (True, [remote.Path("/k1")]),
        ),
        ({"ansible_ssh_extra_args": "-oStrictHostKeyChecking=no"}, (False, [])),
        ({"ansible_ssh_common_args": "-o 'StrictHostKeyChecking no'"}, (False, [])),
        ({"ansible_host_key_checking": False}, (False, [])),
    ],
)
def test_fabric_checks_host_keys_as_the_hosts_ssh_args_say(hv, expected):
    assert remote.host_key_policy(hv) == expected


def test_commands_run_as_root_through_sudo_when_the_login_user_is_not_root():
    class Conn:
        pyfleet_sudo = remote._become_prefix({"ansible_user": "deploy", "ansible_become": True})

    assert remote.as_root(Conn, "ls /srv | wc -l") == "sudo -n -- sh -c 'ls /srv | wc -l'"
    Conn.pyfleet_sudo = remote._become_prefix({"ansible_user": "root", "ansible_become": True})
    assert remote.as_root(Conn, "ls /srv") == "ls /srv"
    assert remote._become_prefix({"ansible_user": "deploy"}) == ""


def test_refused_sudo_is_one_line_naming_the_host_and_the_fix():
    class Conn:
        pyfleet_sudo, user = "sudo -n --", "deploy"

    result = subprocess.CompletedProcess([], 1, "", "sudo: a password is required\n")
    result.exited = 1
    error = remote.sudo_failure("web1", Conn, result)
    assert "host web1: deploy may not run commands as root (sudo: a password is required)" in str(error)
    assert "passwordless sudo" in str(error)


class KeyServer:
    """An SSH server that only shows its host key (no login succeeds), over a socket pair: no network."""

    port = 2222  # known_hosts names it [127.0.0.1]:2222

    def __init__(self):
        self.key = paramiko.ECDSAKey.generate()

    class Refuse(paramiko.ServerInterface):
        def get_allowed_auths(self, username):
            return "publickey"

    def serve(self, sock):
        transport = paramiko.Transport(sock)
        transport.add_server_key(self.key)

        def handshake():
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                transport.start_server(server=self.Refuse())

        threading.Thread(target=handshake, daemon=True).start()

    def line(self, key=None):
        key = key or self.key
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"


@pytest.fixture
def key_server(monkeypatch):
    """Fabric connections of pyfleet.remote reach a KeyServer through a socket pair."""
    server = KeyServer()

    class Paired(remote.Connection):
        def open(self):
            ours, theirs = socket.socketpair()
            server.serve(theirs)
            self.connect_kwargs["sock"] = ours
            return super().open()

    monkeypatch.setattr(remote, "Connection", Paired)
    return server


def _inv(tmp_path, port, known_hosts):
    login_key = tmp_path / "id_ed25519"
    if not login_key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", login_key], check=True)
    hv = {
        "ansible_ssh_private_key_file": str(login_key),
        "ansible_host": "127.0.0.1",
        "ansible_port": port,
        "ansible_user": "deploy",
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes",
    }
    return Inventory(path=tmp_path / "prod", hosts={"web1": hv}, groups={"all": ["web1"]})


def test_fabric_refuses_an_unknown_host_key_with_one_line(tmp_path, key_server):
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(PyfleetError) as exc:
        remote.run_on(_inv(tmp_path, key_server.port, known), ["web1"], "true")
    assert str(exc.value) == (
        f"host web1 (127.0.0.1): its SSH host key is unknown (not in {known}); check the key's fingerprint "
        f"on the server and accept it with ssh once (or add it to {known})"
    )


def test_fabric_refuses_a_changed_host_key_with_one_line(tmp_path, key_server):
    known = tmp_path / "known_hosts"
    known.write_text(key_server.line(paramiko.ECDSAKey.generate()))
    with pytest.raises(PyfleetError, match=r"^host web1 \(127.0.0.1\): its SSH host key CHANGED") as exc:
        remote.run_on(_inv(tmp_path, key_server.port, known), ["web1"], "true")
    assert f"ssh-keygen -R [127.0.0.1]:{key_server.port}" in str(exc.value) and "\n" not in str(exc.value)


def test_fabric_accepts_the_known_host_key_and_goes_on_to_log_in(tmp_path, key_server):
    known = tmp_path / "known_hosts"
    known.write_text(key_server.line())
    with pytest.raises(PyfleetError, match=r"^host web1 \(127.0.0.1\): deploy could not log in"):
        remote.run_on(_inv(tmp_path, key_server.port, known), ["web1"], "true")


def test_a_changed_lab_host_key_names_the_lab_fix(tmp_path, key_server, monkeypatch):
    monkeypatch.setattr(remote, "LAB_STATE", tmp_path / ".lab")
    known = tmp_path / ".lab" / "keylab" / "known_hosts"
    known.parent.mkdir(parents=True)
    known.write_text(key_server.line(paramiko.ECDSAKey.generate()))
    with pytest.raises(PyfleetError) as exc:
        remote.run_on(_inv(tmp_path, key_server.port, known), ["web1"], "true")
    assert str(exc.value) == (
        f"host web1 (127.0.0.1): its SSH host key does not match the lab's known_hosts ({known}); "
        "fab lab.up reads the lab hosts' keys again"
    )


def test_a_running_host_without_net_admin_gets_the_recreate_hint(monkeypatch, the_lab):
    monkeypatch.setattr(lab, "container_state", lambda _lab, _host: ("running", None))
    monkeypatch.setattr(lab, "cgroup_options", list)
    monkeypatch.setattr(lab, "_has_net_admin", lambda _lab, _host: False)
    monkeypatch.setattr(lab, "_install_key", lambda *_: subprocess.CompletedProcess([], 0, "", ""))
    said = []
    assert lab.start_host(the_lab, "web1", "img:tag", ED_A, log=said.append) is False
    assert said == [
        "web1: was created without the NET_ADMIN capability (a host firewall cannot load); "
        "fab lab.down && fab lab.up recreates it"
    ]
