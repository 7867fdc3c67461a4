"""pyfleet.remote: commands on hosts over SSH, through a stand-in SSH server.

Each "host" is a paramiko SSH server reached through a socket pair (no network):
it accepts one login user with one public key, checks nothing else, and runs
every command it is sent with ``sh -c`` in its own temporary directory, where a
fake ``sudo`` logs its arguments and runs (or refuses) the rest. Fabric and
paramiko on our side are the real ones, so the connection settings pyfleet
derives from the inventory (address, port, user, key, host key checks, sudo)
decide whether a command gets through.
"""

import contextlib
import socket
import struct
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import fabric.config
import paramiko
import pytest

from pyfleet import remote
from pyfleet.errors import PyfleetError
from pyfleet.inventory import Inventory

FAKE_SUDO = """#!/bin/sh
printf '%s\\n' "$*" >> "{log}"
if [ -e "{refuse}" ]; then echo "sudo: a password is required" >&2; exit 1; fi
[ "$1" = -n ] && shift
[ "$1" = -u ] && shift 2
[ "$1" = -- ] && shift
exec "$@"
"""


class ServerTransport(paramiko.Transport):
    """A server transport that records the channels whose request it has said yes to."""

    def __init__(self, sock):
        super().__init__(sock)
        self.replies, self.replied = threading.Condition(), set()

    def _send_user_message(self, data):
        super()._send_user_message(data)
        raw = data.asbytes()
        if raw[:1] == paramiko.common.cMSG_CHANNEL_SUCCESS:
            with self.replies:
                self.replied.add(struct.unpack(">I", raw[1:5])[0])
                self.replies.notify_all()


class Host:
    """One stand-in SSH host: its host key, login, and the commands it ran."""

    def __init__(self, root, user, login_key):
        self.root = root
        self.user, self.login_key = user, login_key
        self.key = paramiko.ECDSAKey.generate()
        self.logins, self.commands = [], []
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        sudo = bin_dir / "sudo"
        sudo.write_text(FAKE_SUDO.format(log=root / "sudo.log", refuse=root / "sudo-refuses"))
        sudo.chmod(0o755)

    def sudo_calls(self):
        log = self.root / "sudo.log"
        return log.read_text().splitlines() if log.exists() else []

    class Server(paramiko.ServerInterface):
        def __init__(self, host):
            self.host = host

        def get_allowed_auths(self, username):
            return "publickey"

        def check_auth_publickey(self, username, key):
            self.host.logins.append(username)
            ok = username == self.host.user and key.get_base64() == self.host.login_key.get_base64()
            return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

        def check_channel_request(self, kind, chanid):
            return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

        def check_channel_exec_request(self, channel, command):
            command = command.decode()
            self.host.commands.append(command)
            threading.Thread(target=self.host.execute, args=(channel, command), daemon=True).start()
            return True

    def execute(self, channel, command):
        # Answer only once the exec request's success reply is out: a fast command closing its
        # channel before it would make the client see "Channel closed".
        transport = channel.get_transport()
        with transport.replies:
            transport.replies.wait_for(lambda: channel.remote_chanid in transport.replied, timeout=10)
        env = {"PATH": f"{self.root / 'bin'}:/usr/bin:/bin", "HOME": str(self.root)}
        proc = subprocess.run(
            ["sh", "-c", command], cwd=self.root, env=env, capture_output=True, timeout=20, check=False
        )
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            channel.sendall(proc.stdout)
            channel.sendall_stderr(proc.stderr)
            channel.send_exit_status(proc.returncode)
            channel.close()

    def serve(self, sock, transports):
        transport = ServerTransport(sock)
        transport.add_server_key(self.key)
        transports.append(transport)

        def handshake():
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                transport.start_server(server=self.Server(self))

        threading.Thread(target=handshake, daemon=True).start()

    def known_line(self, address, port):
        name = address if port == 22 else f"[{address}]:{port}"
        return f"{name} {self.key.get_name()} {self.key.get_base64()}\n"


@pytest.fixture
def hosts(tmp_path, monkeypatch):
    """{(address, port): Host}; Fabric connections of pyfleet.remote reach the Host at their address and port."""
    by_address, transports = {}, []
    opened = []

    class Paired(remote.Connection):
        def open(self):
            if self.is_connected:
                return None
            opened.append((self.host, self.port, self.user))
            host = by_address.get((self.host, self.port))
            if host is None:
                raise OSError(f"[Errno 113] No route to host {self.host}:{self.port}")
            ours, theirs = socket.socketpair()
            host.serve(theirs, transports)
            self.connect_kwargs["sock"] = ours
            return super().open()

    monkeypatch.setattr(remote, "Connection", Paired)
    by_address["opened"] = opened
    yield by_address
    for transport in transports:
        transport.close()


def login_key(tmp_path):
    path = tmp_path / "id_ecdsa"
    if not path.exists():
        paramiko.ECDSAKey.generate().write_private_key_file(str(path))
    return path, paramiko.ECDSAKey.from_private_key_file(str(path))


def fleet(tmp_path, hosts, names, user="deploy", **extra):
    """An inventory of ``names`` on 127.0.0.N:2200+N, each a Host trusted through one known_hosts file."""
    key_file, key = login_key(tmp_path)
    known = tmp_path / "known_hosts"
    hv_by_host = {}
    for n, name in enumerate(names, start=1):
        address, port = f"127.0.0.{n}", 2200 + n
        host = Host(tmp_path / name, user, key)
        hosts[(address, port)] = host
        with known.open("a") as f:
            f.write(host.known_line(address, port))
        hv_by_host[name] = {
            "ansible_host": address,
            "ansible_port": str(port),  # as an inventory may give it: a string
            "ansible_user": user,
            "ansible_ssh_private_key_file": str(key_file),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes",
            **extra,
        }
    return Inventory(path=tmp_path / "prod", hosts=hv_by_host, groups={"all": list(names)})


# --- run_on through the stand-in SSH hosts ------------------------------------------------


def test_run_on_gives_each_hosts_exit_code_and_output_in_the_hosts_order(tmp_path, hosts, capsys):
    inv = fleet(tmp_path, hosts, ["web1", "web2", "lb1"])
    for name in ("web1", "web2", "lb1"):
        (tmp_path / name / "id").write_text(f"I am {name}\n")
    (tmp_path / "web2" / "web2-only").touch()
    got = remote.run_on(inv, ["lb1", "web1", "web2"], "cat id; test -e web2-only || exit 3")
    assert list(got) == ["lb1", "web1", "web2"]
    assert got == {"lb1": (3, "I am lb1\n"), "web1": (3, "I am web1\n"), "web2": (0, "I am web2\n")}
    assert capsys.readouterr() == ("", "")  # nothing reached the terminal
    # Logged in as the inventory's user at its address and port (the string "2201" as a number).
    assert sorted(hosts["opened"]) == [
        ("127.0.0.1", 2201, "deploy"),
        ("127.0.0.2", 2202, "deploy"),
        ("127.0.0.3", 2203, "deploy"),
    ]


def test_run_on_logs_in_with_the_inventorys_key_and_user_and_runs_the_command_as_given(tmp_path, hosts):
    inv = fleet(tmp_path, hosts, ["web1"], user="root")
    assert remote.run_on(inv, ["web1"], "echo 'a  b' | wc -c") == {"web1": (0, "5\n")}
    host = hosts[("127.0.0.1", 2201)]
    assert host.logins == ["root"]
    assert host.commands == ["echo 'a  b' | wc -c"]  # root needs no sudo
    assert host.sudo_calls() == []


def test_a_login_user_with_become_runs_the_command_through_sudo_n(tmp_path, hosts):
    inv = fleet(tmp_path, hosts, ["web1", "web2"], ansible_become=True)
    inv.hosts["web2"]["ansible_become_user"] = "postgres"
    got = remote.run_on(inv, ["web1", "web2"], "echo ran; exit 4")
    assert got == {"web1": (4, "ran\n"), "web2": (4, "ran\n")}
    assert hosts[("127.0.0.1", 2201)].commands == ["sudo -n -- sh -c 'echo ran; exit 4'"]
    assert hosts[("127.0.0.1", 2201)].sudo_calls() == ["-n -- sh -c echo ran; exit 4"]
    assert hosts[("127.0.0.2", 2202)].commands == ["sudo -n -u postgres -- sh -c 'echo ran; exit 4'"]


def test_refused_sudo_stops_with_one_line_naming_the_host_and_the_fix(tmp_path, hosts):
    inv = fleet(tmp_path, hosts, ["web1"], ansible_become="yes")
    (tmp_path / "web1" / "sudo-refuses").touch()
    with pytest.raises(PyfleetError) as caught:
        remote.run_on(inv, ["web1"], "true")
    assert str(caught.value) == (
        "host web1: deploy may not run commands as root (sudo: a password is required); "
        "fab runs them with sudo -n: give deploy passwordless sudo there (NOPASSWD in /etc/sudoers.d)"
    )


def test_a_command_failing_with_1_and_a_sudo_like_line_is_not_refused_sudo_without_become(tmp_path, hosts):
    inv = fleet(tmp_path, hosts, ["web1"])
    got = remote.run_on(inv, ["web1"], "echo 'sudo: not ours' >&2; echo out; exit 1")
    assert got == {"web1": (1, "out\n")}


def test_an_unreachable_host_is_one_line_naming_it_and_every_connection_is_closed(tmp_path, hosts, monkeypatch):
    inv = fleet(tmp_path, hosts, ["web1", "web2"])
    inv.hosts["web2"]["ansible_host"] = "10.9.9.9"
    closed = []
    close = remote.Connection.close

    def recording_close(self):
        closed.append(self.pyfleet_host)
        return close(self)

    monkeypatch.setattr(remote.Connection, "close", recording_close)
    with pytest.raises(remote.Unreachable) as caught:
        remote.run_on(inv, ["web1", "web2"], "true")
    assert str(caught.value) == (
        "host web2 (10.9.9.9) is unreachable: OSError: [Errno 113] No route to host 10.9.9.9:2202; "
        "check it is up (fab lab.up for the lab) and its ansible_host"
    )
    assert caught.value.cause == "OSError: [Errno 113] No route to host 10.9.9.9:2202"
    assert sorted(closed) == ["web1", "web2"]


def test_a_wrong_login_key_is_one_line_saying_who_could_not_log_in(tmp_path, hosts):
    inv = fleet(tmp_path, hosts, ["web1"])
    other = tmp_path / "other_key"
    paramiko.ECDSAKey.generate().write_private_key_file(str(other))
    inv.hosts["web1"]["ansible_ssh_private_key_file"] = str(other)
    with pytest.raises(PyfleetError) as caught:
        remote.run_on(inv, ["web1"], "true")
    message = str(caught.value)
    assert message.startswith("host web1 (127.0.0.1): deploy could not log in (")
    assert message.endswith("); check ansible_user and ansible_ssh_private_key_file (the lab: fab lab.up)")


def test_without_host_key_checking_an_unknown_host_is_accepted(tmp_path, hosts):
    inv = fleet(tmp_path, hosts, ["web1"])
    (tmp_path / "known_hosts").write_text("")
    inv.hosts["web1"]["ansible_ssh_common_args"] = "-o StrictHostKeyChecking=no"
    assert remote.run_on(inv, ["web1"], "echo in") == {"web1": (0, "in\n")}
    inv.hosts["web1"]["ansible_ssh_common_args"] = f"-o UserKnownHostsFile={tmp_path / 'known_hosts'}"
    with pytest.raises(PyfleetError, match=r"^host web1 \(127.0.0.1\): its SSH host key is unknown"):
        remote.run_on(inv, ["web1"], "echo in")


def test_known_hosts_files_that_do_not_exist_are_skipped_and_the_others_read(tmp_path, hosts):
    inv = fleet(tmp_path, hosts, ["web1"])
    known = tmp_path / "known_hosts"
    args = f"-o 'UserKnownHostsFile={tmp_path}/missing {known}' -o StrictHostKeyChecking=yes"
    inv.hosts["web1"]["ansible_ssh_common_args"] = args
    assert remote.run_on(inv, ["web1"], "echo in") == {"web1": (0, "in\n")}


def test_a_command_broken_off_is_the_host_unreachable(tmp_path, hosts, monkeypatch):
    inv = fleet(tmp_path, hosts, ["web1"])

    def broken(self, command, **kwargs):
        raise EOFError("channel closed")

    monkeypatch.setattr(remote.Connection, "run", broken)
    with pytest.raises(remote.Unreachable, match=r"^host web1 \(127.0.0.1\) is unreachable: EOFError: channel closed;"):
        remote.run_on(inv, ["web1"], "true")


def test_run_passes_its_options_to_fabric_and_warns_instead_of_raising(tmp_path, hosts, capsys):
    inv = fleet(tmp_path, hosts, ["web1"])
    conn = remote.connection(inv, "web1")
    try:
        result = remote.run(conn, "echo shown; echo said >&2; exit 2", hide="stderr")
        assert (result.exited, result.stdout, result.stderr) == (2, "shown\n", "said\n")
        assert capsys.readouterr() == ("shown\n", "")
        remote.run(conn, "echo again", hide=True)  # the open connection is used again
        assert capsys.readouterr() == ("", "")
        assert len(hosts[("127.0.0.1", 2201)].logins) == 1
    finally:
        conn.close()


# --- the connection's settings -------------------------------------------------------------


def test_connection_takes_address_user_port_key_and_a_ten_second_connect_timeout(monkeypatch):
    monkeypatch.setattr(fabric.config, "get_local_user", lambda: "me")  # Fabric's own default: not ours
    inv = Inventory(
        path=Path("inventory/prod"),
        hosts={
            "web1": {
                "ansible_host": "10.0.0.5",
                "ansible_user": "deploy",
                "ansible_port": "2222",
                "ansible_ssh_private_key_file": "/keys/id",
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no",
            },
            "web2": {},
        },
    )
    conn = remote.connection(inv, "web1")
    assert (conn.host, conn.user, conn.port, conn.connect_timeout) == ("10.0.0.5", "deploy", 2222, 10)
    assert conn.connect_kwargs == {"key_filename": ["/keys/id"]}
    assert isinstance(conn.client._policy, paramiko.AutoAddPolicy)
    assert (conn.pyfleet_host, conn.pyfleet_known_hosts, conn.pyfleet_sudo) == ("web1", [], "")
    bare = remote.connection(inv, "web2")
    assert (bare.host, bare.user, bare.port) == ("web2", "root", 22)
    assert "key_filename" not in bare.connect_kwargs
    assert isinstance(bare.client._policy, paramiko.RejectPolicy)


def test_connection_loads_the_known_hosts_files_that_exist(tmp_path):
    known = tmp_path / "known"
    key = paramiko.ECDSAKey.generate()
    known.write_text(f"10.0.0.5 {key.get_name()} {key.get_base64()}\n")
    args = f"-o 'UserKnownHostsFile={known} {tmp_path}/none'"
    inv = Inventory(path=Path("inventory/prod"), hosts={"web1": {"ansible_ssh_common_args": args}})
    conn = remote.connection(inv, "web1")
    assert conn.client.get_host_keys().lookup("10.0.0.5") is None  # the user's keys: none of ours
    assert conn.client._system_host_keys.lookup("10.0.0.5")[key.get_name()] == key
    assert conn.pyfleet_known_hosts == [known, tmp_path / "none"]


def test_a_host_not_in_the_inventory_is_refused_naming_the_hosts():
    inv = Inventory(path=Path("inventory/prod"), hosts={"web1": {}, "lb1": {}})
    with pytest.raises(PyfleetError) as caught:
        remote.connection(inv, "web9")
    assert str(caught.value) == "no host 'web9' in inventory inventory/prod; hosts: web1, lb1"


# --- parallelism ------------------------------------------------------------------------------


@pytest.fixture
def fake_hosts(monkeypatch):
    """remote.connection and remote.run replaced: each command is a Python callable run with the host."""
    closed = []

    class Conn:
        def __init__(self, host):
            self.host = host

        def close(self):
            closed.append(self.host)

    def run(conn, command, **kwargs):
        assert kwargs == {"hide": True}
        return command(conn.host)

    monkeypatch.setattr(remote, "connection", lambda inv, host: Conn(host))
    monkeypatch.setattr(remote, "run", run)
    return closed


def test_run_on_runs_the_hosts_at_the_same_time(fake_hosts):
    names = [f"web{n}" for n in range(6)]
    together = threading.Barrier(len(names), timeout=5)

    def command(host):
        together.wait()  # breaks (BrokenBarrierError) unless all six are running at once
        return SimpleNamespace(exited=0, stdout=host)

    got = remote.run_on(None, names, command)
    assert got == {n: (0, n) for n in names}
    assert sorted(fake_hosts) == sorted(names)


def test_run_on_keeps_the_order_of_the_hosts_not_of_the_answers(fake_hosts):
    first_done = threading.Event()

    def command(host):
        if host == "slow":
            assert first_done.wait(5)
        else:
            first_done.set()
        return SimpleNamespace(exited=len(host), stdout=f"{host}\n")

    got = remote.run_on(None, ["slow", "fast"], command)
    assert list(got.items()) == [("slow", (4, "slow\n")), ("fast", (4, "fast\n"))]


def test_run_on_uses_at_most_twelve_threads(fake_hosts, monkeypatch):
    sizes = []

    class Pool(ThreadPoolExecutor):
        def __init__(self, max_workers):
            sizes.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(remote, "ThreadPoolExecutor", Pool)

    def command(host):
        return SimpleNamespace(exited=0, stdout="")

    assert len(remote.run_on(None, [f"h{n}" for n in range(30)], command)) == 30
    assert remote.run_on(None, ["a", "b", "c"], command) == {"a": (0, ""), "b": (0, ""), "c": (0, "")}
    assert remote.run_on(None, [], command) == {}
    assert sizes == [12, 3, 1]


def test_a_failing_host_still_has_its_connection_closed(fake_hosts):
    def command(host):
        if host == "bad":
            raise PyfleetError("host bad: no")
        return SimpleNamespace(exited=0, stdout="")

    with pytest.raises(PyfleetError, match=r"^host bad: no$"):
        remote.run_on(None, ["good", "bad"], command)
    assert sorted(fake_hosts) == ["bad", "good"]


# --- the ssh arguments, as Ansible's ssh reads them ---------------------------------------


@pytest.mark.parametrize(
    "hv, name, expected",
    [
        ({}, "UserKnownHostsFile", None),
        ({"ansible_ssh_common_args": "-o UserKnownHostsFile=/k1"}, "UserKnownHostsFile", "/k1"),
        ({"ansible_ssh_common_args": "-oUserKnownHostsFile=/k1"}, "userknownhostsfile", "/k1"),
        ({"ansible_ssh_common_args": "-o 'UserKnownHostsFile /k1 /k2'"}, "UserKnownHostsFile", "/k1 /k2"),
        ({"ansible_ssh_common_args": "-o 'UserKnownHostsFile = /k1 '"}, "UserKnownHostsFile", "/k1"),
        # ssh: the first value given wins, the common args before the extra ones.
        (
            {"ansible_ssh_common_args": "-o Port=1 -o Port=2", "ansible_ssh_extra_args": "-o Port=3"},
            "Port",
            "1",
        ),
        ({"ansible_ssh_common_args": None, "ansible_ssh_extra_args": "-o Port=3"}, "Port", "3"),
        # A broken quote in one is skipped, the other still read.
        ({"ansible_ssh_common_args": "-o 'Port=1", "ansible_ssh_extra_args": "-o Port=3"}, "Port", "3"),
        # The value keeps its own '=' signs; -o at the end, other options and their values are no option.
        ({"ansible_ssh_common_args": "-o ProxyCommand=a=b -i Port=9 -o"}, "ProxyCommand", "a=b"),
        ({"ansible_ssh_common_args": "-i Port=9 -o"}, "Port", None),
        ({"ansible_ssh_common_args": "-o PortX=1 -oPort=2"}, "Port", "2"),
        # Only -o words are options: not the value of another flag that looks like one.
        ({"ansible_ssh_common_args": "-EPort=9.log -o Port=2"}, "Port", "2"),
        ({"ansible_ssh_common_args": "-l xxPort=9 -o Port=2"}, "Port", "2"),
    ],
)
def test_ssh_option_reads_o_options_as_ssh_does(hv, name, expected):
    assert remote.ssh_option(hv, name) == expected


@pytest.mark.parametrize("value", [True, "1", "true", " Yes ", "ON", "y"])
def test_truthy_values(value):
    assert remote._truthy(value) is True


@pytest.mark.parametrize("value", [False, None, "0", "false", "no", "off", "", "yess"])
def test_falsy_values(value):
    assert remote._truthy(value) is False


@pytest.mark.parametrize(
    "hv, expected",
    [
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=OFF"}, (False, [])),
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/k"}, (True, ["/k"])),
        ({"ansible_host_key_checking": "False", "ansible_ssh_common_args": "-o UserKnownHostsFile=/k"}, (False, [])),
        ({"ansible_host_key_checking": "yes", "ansible_ssh_common_args": "-o UserKnownHostsFile=/k"}, (True, ["/k"])),
        ({"ansible_ssh_common_args": "-o 'UserKnownHostsFile=/k1 /dev/null ~/k2'"}, (True, ["/k1", "~/k2"])),
        ({"ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null"}, (True, [])),
    ],
)
def test_host_key_policy_cases(hv, expected):
    check, files = expected
    expanded = [Path(remote.os.path.expanduser(f)) for f in files]
    assert remote.host_key_policy(hv) == (check, expanded)
    assert all("~" not in str(f) for f in remote.host_key_policy(hv)[1])


@pytest.mark.parametrize(
    "hv, prefix",
    [
        ({}, ""),
        ({"ansible_become": True}, ""),  # root already
        ({"ansible_user": "deploy"}, ""),  # no become
        ({"ansible_user": "deploy", "ansible_become": "false"}, ""),
        ({"ansible_user": "deploy", "ansible_become": "true"}, "sudo -n --"),
        ({"ansible_user": "deploy", "ansible_become": True, "ansible_become_user": "root"}, "sudo -n --"),
        ({"ansible_user": "deploy", "ansible_become": True, "ansible_become_user": "deploy"}, ""),
        ({"ansible_become": True, "ansible_become_user": "app user"}, "sudo -n -u 'app user' --"),
    ],
)
def test_become_prefix(hv, prefix):
    assert remote._become_prefix(hv) == prefix


def test_as_root_without_a_sudo_setting_runs_the_command_unchanged():
    assert remote.as_root(SimpleNamespace(), "echo 'x'") == "echo 'x'"
    assert (
        remote.as_root(SimpleNamespace(pyfleet_sudo="sudo -n --"), "echo 'x'")
        == "sudo -n -- sh -c 'echo '\"'\"'x'\"'\"''"
    )


# --- one line per refusal -----------------------------------------------------------------


def test_an_unknown_key_names_every_known_hosts_file_and_adds_to_the_first():
    exc = paramiko.SSHException("Server '[10.0.0.5]:2222' not found in known_hosts")
    line = remote.host_key_error("web1", "10.0.0.5", "2222", exc, [Path("/a/known"), Path("/b/known")])
    assert line == (
        "host web1 (10.0.0.5): its SSH host key is unknown (not in /a/known, /b/known); check the key's "
        "fingerprint on the server and accept it with ssh once (or add it to /a/known)"
    )
    line = remote.host_key_error("web1", "10.0.0.5", 22, exc, [])
    assert "(not in no known_hosts file)" in line


def test_a_changed_key_on_port_22_names_the_bare_address_for_ssh_keygen():
    key = paramiko.ECDSAKey.generate()
    exc = paramiko.BadHostKeyException("10.0.0.5", key, paramiko.ECDSAKey.generate())
    line = remote.host_key_error("web1", "10.0.0.5", "22", exc, [Path("/a/known")])
    assert line == (
        "host web1 (10.0.0.5): its SSH host key CHANGED (does not match /a/known): the server was "
        "reinstalled, or someone is in between; if you know it was reinstalled, check the new key's "
        "fingerprint on the server, then ssh-keygen -R 10.0.0.5 and accept it with ssh once"
    )


def test_an_unknown_lab_key_says_it_is_not_in_the_labs_file(tmp_path, monkeypatch):
    monkeypatch.setattr(remote, "LAB_STATE", tmp_path / ".lab")
    known = tmp_path / ".lab" / "keylab" / "known_hosts"
    exc = paramiko.SSHException("not found in known_hosts")
    assert remote.host_key_error("web1", "10.0.0.5", 22, exc, [tmp_path / "other", known]) == (
        f"host web1 (10.0.0.5): its SSH host key is not in the lab's known_hosts ({tmp_path / 'other'}, {known}); "
        "fab lab.up reads the lab hosts' keys again"
    )
    # A file beside the lab's state directory is not the lab's.
    assert "unknown" in remote.host_key_error("web1", "10.0.0.5", 22, exc, [tmp_path / ".lab-old" / "known"])


class Refusing:
    """A connection whose open() raises ``exc``; ``transport``: what paramiko left (None: nothing reached)."""

    def __init__(self, exc, transport=None, **attrs):
        self.exc, self.host, self.port, self.user = exc, "10.0.0.5", 22, "deploy"
        self.pyfleet_known_hosts = [Path("/k")]
        self.client = SimpleNamespace(get_transport=lambda: transport)
        self.__dict__.update(attrs)

    def open(self):
        raise self.exc


def transport(active, authenticated):
    return SimpleNamespace(is_active=lambda: active, is_authenticated=lambda: authenticated)


@pytest.mark.parametrize(
    "exc, reached, line",
    [
        (
            paramiko.SSHException("Server '10.0.0.5' not found in known_hosts"),
            None,
            "host web1 (10.0.0.5): its SSH host key is unknown (not in /k)",
        ),
        (
            paramiko.AuthenticationException("Authentication failed."),
            None,
            "host web1 (10.0.0.5): deploy could not log in (Authentication failed.); check ansible_user",
        ),
        (
            paramiko.SSHException("No authentication methods available"),
            None,
            "host web1 (10.0.0.5): deploy could not log in (No authentication methods available); check",
        ),
        (
            paramiko.SSHException("encountered EC key, expected OPENSSH key"),
            transport(active=True, authenticated=False),
            "host web1 (10.0.0.5): deploy could not log in (encountered EC key, expected OPENSSH key); ",
        ),
        (
            paramiko.SSHException("Error reading SSH protocol banner"),
            transport(active=False, authenticated=False),
            "host web1 (10.0.0.5) is unreachable: SSHException: Error reading SSH protocol banner; check it is up",
        ),
        (
            paramiko.SSHException("Error reading SSH protocol banner"),
            transport(active=True, authenticated=True),
            "host web1 (10.0.0.5) is unreachable: SSHException: Error reading SSH protocol banner; check it is up",
        ),
        (
            TimeoutError("timed out"),
            None,
            "host web1 (10.0.0.5) is unreachable: TimeoutError: timed out; check it is up (fab lab.up for the lab) "
            "and its ansible_host",
        ),
    ],
)
def test_open_checked_says_in_one_line_why_a_host_could_not_be_used(exc, reached, line):
    with pytest.raises(PyfleetError) as caught:
        remote.open_checked(Refusing(exc, reached, pyfleet_host="web1"))
    assert str(caught.value).startswith(line)
    assert "\n" not in str(caught.value) and caught.value.__suppress_context__


def test_open_checked_names_the_address_when_the_connection_has_no_host_name():
    key = paramiko.ECDSAKey.generate()
    with pytest.raises(
        PyfleetError, match=r"^host 10.0.0.5 \(10.0.0.5\): its SSH host key CHANGED \(does not match /k\)"
    ):
        remote.open_checked(Refusing(paramiko.BadHostKeyException("10.0.0.5", key, key)))
    with pytest.raises(remote.Unreachable, match=r"^host 10.0.0.5 \(10.0.0.5\) is unreachable: OSError: down;"):
        remote.run(Refusing(OSError("down")), "true")


def test_run_names_the_address_when_the_connection_has_no_host_name_and_breaks():
    class Breaking(Refusing):
        def open(self):
            pass

        def run(self, command, **kwargs):
            raise EOFError("gone")

    with pytest.raises(remote.Unreachable, match=r"^host 10.0.0.5 \(10.0.0.5\) is unreachable: EOFError: gone;"):
        remote.run(Breaking(None), "true")


@pytest.mark.parametrize(
    "sudo, exited, stderr, refused",
    [
        (
            "sudo -n --",
            1,
            "x\nsudo: a terminal is required\nsudo: a password is required\n",
            "sudo: a password is required",
        ),
        ("sudo -n --", 1, None, None),
        ("sudo -n --", 1, "mysudo: no\n", None),
        ("sudo -n --", 2, "sudo: a password is required\n", None),
        ("", 1, "sudo: a password is required\n", None),
    ],
)
def test_sudo_failure_only_for_sudos_own_refusal(sudo, exited, stderr, refused):
    conn = SimpleNamespace(pyfleet_sudo=sudo, user="deploy")
    error = remote.sudo_failure("web1", conn, SimpleNamespace(exited=exited, stderr=stderr))
    if refused is None:
        assert error is None
    else:
        assert str(error).startswith(f"host web1: deploy may not run commands as root ({refused}); ")
    assert (
        remote.sudo_failure("web1", SimpleNamespace(user="deploy"), SimpleNamespace(exited=1, stderr="sudo: x")) is None
    )
